//! The plan: one YAML file describing one protected service.
//!
//! `model` holds the validated, typed plan the engine works from; `parse` turns
//! YAML text into it, reporting every problem as `file:line:column: field: cause`.

mod model;
mod parse;

pub use model::*;
pub use parse::{PlanError, PlanErrors, parse_plan};
