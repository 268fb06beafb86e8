//! placeholder
pub mod dns;
pub mod rfc2136;
