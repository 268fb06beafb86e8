//! placeholder
pub mod dns;
pub mod notify;
pub mod postgres;
pub mod probe;
pub mod rfc2136;
#[cfg(feature = "aws")]
pub mod route53;
