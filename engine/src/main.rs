//! The `csmp` binary: everything is in the library.

fn main() -> std::process::ExitCode {
    csmp::cli::main()
}
