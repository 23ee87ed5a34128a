//! The `realmgate` binary: only glue around [`realmgate::cli`].
#![forbid(unsafe_code)]

// The system allocator: mimalloc was tried (docs/benchmarks.md) and gave no
// throughput with per-core proxy threads while holding half as much memory
// again per idle connection.

fn main() -> std::process::ExitCode {
    realmgate::cli::main()
}
