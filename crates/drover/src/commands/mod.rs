//! The command line's front end over the application layer (`crate::app`): one module per
//! command family. Each returns `Result<(), Failure>`; `finish` turns that into the exit
//! code of its class and the one error line a person reads.

pub mod backup;
pub mod drill;
pub mod drills;
pub mod lab;
pub mod plan;
pub mod readiness;
pub mod remote;
pub mod restore;
pub mod run;
pub mod status;
pub mod table;
pub mod terminal;

use std::process::ExitCode;

use clap::ValueEnum;

use crate::app::error::Failure;

/// How a command prints what it read or did.
#[derive(Clone, Copy, Debug, Default, ValueEnum, PartialEq, Eq)]
pub enum Output {
    #[default]
    Text,
    Json,
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
            ExitCode::from(f.class.exit_code())
        }
    }
}

pub fn print_json(value: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(value).expect("serializable"));
}
