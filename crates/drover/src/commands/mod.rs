//! One module per command family. Each returns `Result<(), Failure>`; `finish`
//! turns that into the exit code and the one error line a person reads.

pub mod backup;
pub mod drill;
pub mod lab;
pub mod plan;
pub mod remote;
pub mod restore;
pub mod run;
pub mod status;
pub mod table;

use std::process::ExitCode;

/// Why a command did not succeed, and with which exit code.
#[derive(Debug)]
pub struct Failure {
    /// 2: bad input or a refusal, nothing changed. 1: the operation failed or paused.
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn input(message: impl Into<String>) -> Failure {
        Failure { code: 2, message: message.into() }
    }
    pub fn failed(message: impl Into<String>) -> Failure {
        Failure { code: 1, message: message.into() }
    }
}

pub fn finish(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            let msg = f.message.trim_end();
            if msg.starts_with("error:") {
                eprintln!("{msg}");
            } else {
                eprintln!("error: {msg}");
            }
            ExitCode::from(f.code)
        }
    }
}

/// A runtime for commands that talk to the world.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

pub fn print_json(value: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(value).expect("serializable"));
}
