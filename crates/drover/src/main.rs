//! drover: disaster-recovery orchestration. The command line is `cli`, its commands are `commands`, the daemon
//! (`drover serve`) is `serve`; both front ends stand on the application layer, `app`.

mod app;
mod cli;
mod commands;
mod serve;

fn main() -> std::process::ExitCode {
    // One TLS crypto provider for every client in the process (reqwest, hickory).
    let _ = rustls::crypto::ring::default_provider().install_default();
    cli::main()
}
