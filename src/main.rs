fn main() -> std::process::ExitCode {
    im_server::cli::run()
}
