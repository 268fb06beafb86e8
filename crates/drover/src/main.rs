//! drover: disaster-recovery orchestration. Everything lives in `cli`.

mod cli;
mod commands;
mod serve;
mod wiring;

fn main() -> std::process::ExitCode {
    // One TLS crypto provider for every client in the process (reqwest, hickory).
    let _ = rustls::crypto::ring::default_provider().install_default();
    cli::main()
}
