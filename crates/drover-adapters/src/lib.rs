//! The adapters: small newtypes over the core's world traits, one per real system.
#[cfg(feature = "aws")]
pub mod aws;
pub mod canary;
pub mod deadline;
pub mod dns;
mod errors;
pub use errors::chain as error_chain;
pub mod factory;
pub mod faults;
pub mod hooks;
#[cfg(feature = "kubernetes")]
pub mod kubernetes;
pub mod notify;
pub mod pg_connect;
pub mod postgres;
pub mod probe;
pub mod rfc2136;
pub mod secret_file;
pub mod stop_conditions;
pub mod tls;
