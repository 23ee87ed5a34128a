//! The `realmgate` binary: only glue around [`realmgate::cli`].
#![forbid(unsafe_code)]

/// mimalloc instead of glibc malloc: every request allocates (headers,
/// bodies, futures) and frees on whichever worker thread ends it, which
/// glibc's arenas handle with more work per call (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    realmgate::cli::main()
}
