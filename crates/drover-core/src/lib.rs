//! drover's domain. Everything here is pure: the plan and its validation, check
//! state machines, runs and their journal records, the engine that drives steps
//! through provider traits, and drill arithmetic. Adapters implement the traits.

pub mod autopilot;
pub mod capacity;
pub mod check;
pub mod clock;
pub mod detect;
pub mod drill;
pub mod drill_html;
pub mod drill_log;
pub mod duration;
pub mod engine;
pub mod error;
pub mod event;
pub mod fault;
pub mod history;
pub mod join;
pub mod journal;
pub mod notify;
pub mod plan;
pub mod preflight;
pub mod readiness;
pub mod request;
pub mod run;
pub mod secret;
pub mod steps;
pub mod undo;
pub mod vantage;
pub mod world;

#[cfg(feature = "testing")]
pub mod testing;

pub use error::{ProviderError, ProviderErrorKind, StoreError};
pub use run::{Epoch, RunId};
