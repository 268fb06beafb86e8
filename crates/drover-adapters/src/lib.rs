//! placeholder
pub mod dns;
pub mod postgres;
pub mod probe;
pub mod rfc2136;
