//! The plan: one YAML file describing one protected service.
//!
//! `model` holds the validated, typed plan the engine works from; `raw` reads
//! YAML into a located tree; `parse` reads the sections in order (one module per
//! section) and turns that tree into the model, reporting every problem as
//! `file:line:column: field: cause`; `summary` describes a valid plan.
//!
//! Floors, lowest first: `raw`, `reader` (field readers and located errors),
//! `regions` and `dns` (what several sections share), the sections, `parse`.
//! A section never imports `parse`, and `parse` is the only one that knows them all.

mod aws;
mod aws_database;
mod backup;
mod checks;
mod compute;
mod custom_steps;
mod database;
mod dns;
mod drill;
mod global_accelerator;
pub mod iam;
mod journal;
mod kinds;
mod model;
mod notify;
mod parse;
mod policy;
mod raw;
mod reader;
mod regions;
mod route53;
mod steps;
mod summary;
mod traffic;
mod vantages;

pub use custom_steps::{
    DEFAULT_EXEC_TIMEOUT, DEFAULT_HTTP_TIMEOUT, ExecAction, HttpAction, HttpObserve, RunSide, StepAction,
};
pub use drill::{DEFAULT_CANARY_INTERVAL, DEFAULT_CANARY_TABLE, DEFAULT_CANARY_TIMEOUT};
pub use kinds::*;
pub use model::*;
pub use parse::parse_plan;
pub use reader::{PlanError, PlanErrors};
pub use steps::*;
pub use summary::summary;

#[cfg(test)]
mod test_support {
    use std::sync::Mutex;

    use crate::secret::{Secret, SecretRef, SecretSource};

    /// Knows every secret (all are `pw`) and remembers what it was asked.
    #[derive(Default)]
    pub struct Recording(pub Mutex<Vec<SecretRef>>);

    impl SecretSource for Recording {
        fn resolve(&self, reference: &SecretRef) -> Result<Secret, String> {
            self.0.lock().unwrap().push(reference.clone());
            Ok(Secret::new("pw"))
        }
    }
}
