//! The plan reader: any bytes as a plan file. A plan either reads or is refused with
//! errors; it never panics, and what reads has a summary and a report TTL.
#![no_main]

use std::path::Path;

use drover_core::plan::parse_plan;
use drover_core::secret::{Secret, SecretRef, SecretSource};
use libfuzzer_sys::fuzz_target;

/// Every secret reference resolves: the reader goes on to validate what depends on it.
struct AnySecret;

impl SecretSource for AnySecret {
    fn resolve(&self, _: &SecretRef) -> Result<Secret, String> {
        Ok(Secret::new("fuzz"))
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match parse_plan(Path::new("fuzz.yaml"), text, &AnySecret) {
        Ok(plan) => {
            let _ = drover_core::plan::summary(&plan);
            let _ = drover_core::vantage::report_ttl_ms(&plan);
        }
        Err(errors) => assert!(!errors.0.is_empty(), "a refused plan names at least one error"),
    }
});
