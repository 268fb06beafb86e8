//! Secrets are referenced from the plan and resolved only when a provider needs
//! them. The resolved value is wrapped so it can never be printed by accident.

use std::fmt;

/// Where a secret lives. The plan never holds the value itself.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretRef {
    /// Name of an environment variable.
    Env(String),
    /// Path of a file whose contents (trimmed) are the secret.
    File(std::path::PathBuf),
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "environment variable {name}"),
            SecretRef::File(path) => write!(f, "file {}", path.display()),
        }
    }
}

/// A resolved secret. Debug and Display print `<redacted>`; only `expose` reads it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Text the plan writes itself, or holds as a secret by reference (a webhook URL with its
/// token, an HTTP step's Authorization header, an exec step's variable).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretText {
    /// Written in the plan, and so no secret.
    Plain(String),
    /// Held in an environment variable or a file.
    Secret(SecretRef),
}

impl SecretText {
    /// The value; a plain one is wrapped too, so every such value is handled as a secret.
    pub fn resolve(&self, secrets: &dyn SecretSource) -> Result<Secret, String> {
        match self {
            SecretText::Plain(text) => Ok(Secret::new(text.clone())),
            SecretText::Secret(reference) => secrets.resolve(reference),
        }
    }
}

/// Reads secrets. Core defines the lookup; the binary decides where env and files come from.
pub trait SecretSource: Send + Sync {
    fn resolve(&self, reference: &SecretRef) -> Result<Secret, String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints_its_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "<redacted> <redacted>");
        assert_eq!(s.expose(), "hunter2");
    }
}
