fn main() -> std::process::ExitCode {
    sonicflow::cli::main()
}
