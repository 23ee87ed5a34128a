//! The `realmgate` binary: only glue around [`realmgate::cli`].
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    realmgate::cli::main()
}
