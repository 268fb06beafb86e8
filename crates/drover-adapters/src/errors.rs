//! Error text every adapter shares: a cause chain in one line, and socket failures in
//! the words a user expects. Below every adapter, so none imports another for it.

/// An error and its causes, `a: b: c`.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

/// The first `std::io::Error` in an error's source chain.
pub(crate) fn io_cause<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        source = s.source();
    }
    None
}

/// `connection refused`, `connection reset`, ... in the words a user expects.
pub(crate) fn describe_io(io: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match io.kind() {
        ConnectionRefused => "connection refused".into(),
        ConnectionReset => "connection reset".into(),
        ConnectionAborted => "connection aborted".into(),
        TimedOut => "connection timed out".into(),
        HostUnreachable => "host unreachable".into(),
        NetworkUnreachable => "network unreachable".into(),
        UnexpectedEof => "connection closed by the server".into(),
        _ => io.to_string(),
    }
}

/// `text` with every secret in `secrets` replaced by `<redacted>`, longest first (a URL is
/// hidden whole before its path is); one-character values are left, replacing them would
/// only mangle the text.
pub(crate) fn hide<'a>(text: &str, secrets: impl IntoIterator<Item = &'a str>) -> String {
    let mut secrets: Vec<&str> = secrets.into_iter().filter(|s| s.len() > 1).collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.into_iter().fold(text.to_owned(), |text, secret| text.replace(secret, "<redacted>"))
}
