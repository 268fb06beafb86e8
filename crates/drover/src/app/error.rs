//! Why an operation did not succeed, in one classification both front ends read: the CLI
//! turns a class into its exit code, the daemon's API into its HTTP status, each through
//! one function below. The message is the operator's, written where the error is found
//! (what went wrong and what to do); a front end never rewords it.

use drover_core::StoreError;
use drover_core::engine::{EngineError, Refusal};
use drover_core::run::RunKind;

/// What kind of "no" an operation ended in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Bad input: a flag, a request field, the plan, a secret it references. Nothing changed.
    Input,
    /// Refused by the state of things: a planner's refusal, a run that has ended or waits for
    /// someone, another active run, another daemon leading. Nothing changed.
    Conflict,
    /// No such run.
    NotFound,
    /// The world or the journal cannot be read now; asking again later may work.
    Unavailable,
    /// The operation failed, or a run it drove stopped before completing.
    Failed,
    /// An undo could not be done: the run was not aborted and stays paused, as it was. A
    /// failure for the CLI; for the API a conflict, the run's state being what stands in the
    /// way of the request.
    StaysPaused,
}

impl ErrorClass {
    /// The CLI's exit code: 2 when nothing was changed and the request was at fault or
    /// refused, 1 when the operation failed or paused (the message says how to continue).
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorClass::Input | ErrorClass::Conflict | ErrorClass::NotFound => 2,
            ErrorClass::Unavailable | ErrorClass::Failed | ErrorClass::StaysPaused => 1,
        }
    }

    /// The daemon API's HTTP status.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorClass::Input => 400,
            ErrorClass::NotFound => 404,
            ErrorClass::Conflict | ErrorClass::StaysPaused => 409,
            ErrorClass::Unavailable => 503,
            ErrorClass::Failed => 500,
        }
    }

    /// The class of a daemon's error answer, as the CLI reads it through `--server`: every
    /// client error is the request's (exit 2, as a local refusal), anything else a failure.
    pub fn of_http_status(status: u16) -> ErrorClass {
        match status {
            404 => ErrorClass::NotFound,
            409 => ErrorClass::Conflict,
            400..=499 => ErrorClass::Input,
            503 => ErrorClass::Unavailable,
            _ => ErrorClass::Failed,
        }
    }
}

/// Why an operation did not succeed: its class and the one line a person reads.
#[derive(Debug)]
pub struct Failure {
    pub class: ErrorClass,
    pub message: String,
}

impl Failure {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Failure {
        Failure { class, message: message.into() }
    }
    pub fn input(message: impl Into<String>) -> Failure {
        Failure::new(ErrorClass::Input, message)
    }
    pub fn conflict(message: impl Into<String>) -> Failure {
        Failure::new(ErrorClass::Conflict, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Failure {
        Failure::new(ErrorClass::Unavailable, message)
    }
    pub fn failed(message: impl Into<String>) -> Failure {
        Failure::new(ErrorClass::Failed, message)
    }
}

/// A planner's refusal of a run of `kind`: a region the plan does not know, or the witness,
/// is bad input (the request named it); any other refusal is the state of the world's.
pub fn refused(kind: RunKind, refusal: &Refusal) -> Failure {
    let class = match refusal {
        Refusal::UnknownRegion(..) | Refusal::Witness(_) => ErrorClass::Input,
        _ => ErrorClass::Conflict,
    };
    Failure::new(class, format!("{} refused: {refusal}", kind.as_str()))
}

pub fn engine_failure(e: EngineError) -> Failure {
    match e {
        EngineError::Store(s) => store_failure(s),
        refused @ (EngineError::Ended(..)
        | EngineError::NeedsApproval(_)
        | EngineError::NotAwaitingApproval(..)
        | EngineError::UndoNotPaused(..)) => Failure::conflict(refused.to_string()),
        failed @ EngineError::Undo(..) => Failure::new(ErrorClass::StaysPaused, failed.to_string()),
    }
}

pub fn store_failure(e: StoreError) -> Failure {
    match e {
        StoreError::UnknownRun(_) | StoreError::UnknownDrill(_) => Failure::new(ErrorClass::NotFound, e.to_string()),
        // An impossible order is a race lost to another driver of the run (two approvals,
        // two resumes): a conflict to look at, not a failure of the store.
        StoreError::ActiveRun { .. }
        | StoreError::Driven { .. }
        | StoreError::RunEnded { .. }
        | StoreError::IllegalOrder { .. }
        | StoreError::ActiveDrill { .. }
        | StoreError::DrillEnded { .. }
        | StoreError::IllegalDrillOrder { .. } => Failure::conflict(e.to_string()),
        _ => Failure::failed(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorClass::*;
    use super::*;

    /// The exit codes and statuses the CLI help, docs/openapi.json and scripts rely on.
    #[test]
    fn each_class_keeps_its_exit_code_and_status() {
        let table = [(Input, 2, 400), (Conflict, 2, 409), (NotFound, 2, 404), (Unavailable, 1, 503), (Failed, 1, 500)];
        for (class, code, status) in table {
            assert_eq!((class.exit_code(), class.http_status()), (code, status), "{class:?}");
            assert_eq!(ErrorClass::of_http_status(status).exit_code(), code, "{status}");
        }
        assert_eq!((StaysPaused.exit_code(), StaysPaused.http_status()), (1, 409));
        assert_eq!(ErrorClass::of_http_status(401).exit_code(), 2);
        assert_eq!(ErrorClass::of_http_status(502).exit_code(), 1);
    }

    #[test]
    fn store_and_engine_errors_are_classed_as_before() {
        let unknown = store_failure(StoreError::UnknownRun("r1".into()));
        assert_eq!(
            (unknown.class, unknown.message.as_str()),
            (NotFound, "no run with id r1; 'drover runs' lists them")
        );
        assert_eq!(store_failure(StoreError::ActiveRun { active: "r1".into() }).class, Conflict);
        let late =
            StoreError::IllegalOrder { run: "r1".into(), why: "step 0 (fence) ends, but it never started".into() };
        assert_eq!(store_failure(late).class, Conflict, "a lost race with another driver");
        assert_eq!(store_failure(StoreError::io("disk")).class, Failed);
        let id = drover_core::run::RunId("r1".into());
        assert_eq!(engine_failure(EngineError::NeedsApproval(id)).class, Conflict);
        assert_eq!(engine_failure(EngineError::Undo("lift".into(), "timeout".into())).class, StaysPaused);
    }
}
