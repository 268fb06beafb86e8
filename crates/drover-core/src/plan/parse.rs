//! YAML → Plan. (Being written: see the plan-validation work.)

use std::fmt;
use std::path::Path;

use super::model::Plan;
use crate::secret::SecretSource;

/// One problem in a plan file, located precisely.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanError {
    pub file: String,
    pub line: u64,
    pub column: u64,
    /// Dotted path of the field, e.g. `checks.api.interval`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}: {}", self.file, self.line, self.column, self.field, self.message)
    }
}

/// Every problem found, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanErrors(pub Vec<PlanError>);

impl fmt::Display for PlanErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.0 {
            writeln!(f, "error: {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PlanErrors {}

pub fn parse_plan(_path: &Path, _text: &str, _secrets: &dyn SecretSource) -> Result<Plan, PlanErrors> {
    todo!()
}
