//! The `floodgate` binary: see `floodgate serve --help`.

fn main() -> std::process::ExitCode {
    floodgate::cli::main()
}
