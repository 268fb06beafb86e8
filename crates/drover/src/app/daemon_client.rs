//! How drover reaches a `drover serve` daemon: a peer polling another's report, the
//! CLI with `--server`, a drill watching the lab's daemons. One rule for all of them:
//! the bearer token never crosses the network in clear, so a plain `http://` URL is
//! accepted only for a loopback address, and `https://` trusts the CA in `--ca-file`
//! (or the system's roots without one).

use std::path::Path;
use std::time::Duration;

use crate::app::error::Failure;

/// Refuses a URL that would send the token in clear, or that is not a base URL at all.
pub fn check_url(flag: &str, url: &str) -> Result<(), Failure> {
    let parsed = reqwest::Url::parse(url).map_err(|e| {
        Failure::input(format!("{flag} {url}: not a URL ({e}); expected e.g. https://10.200.0.12:7070"))
    })?;
    let host = parsed.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    let loopback = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    };
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(Failure::input(format!(
            "{flag} {url}: plain http:// is for loopback only, the token would cross the network in clear; \
             use https:// (the daemon's --tls-cert) and --ca-file with the CA that signed it"
        ))),
        other => Err(Failure::input(format!("{flag} {url}: '{other}' is not http or https"))),
    }
}

/// A client for daemons: trusts only `ca_file` when given, presents `identity` (certificate,
/// key) to daemons that want client certificates.
pub fn build(
    ca_file: Option<&Path>,
    identity: Option<(&Path, &Path)>,
    connect_timeout: Duration,
    timeout: Duration,
) -> Result<reqwest::Client, Failure> {
    // Never through a proxy from the environment (HTTPS_PROXY for AWS, say): a loopback
    // http:// call would carry the token to it in clear, and a proxy in a lost region
    // would silence every peer.
    let builder = reqwest::Client::builder().no_proxy().connect_timeout(connect_timeout).timeout(timeout);
    let builder = match ca_file {
        Some(ca) => {
            let tls = drover_adapters::tls::client_config(ca, identity)
                .map_err(|e| Failure::input(format!("--ca-file/--tls-cert: {e}")))?;
            builder.tls_backend_preconfigured(tls)
        }
        None => builder,
    };
    builder.build().map_err(|e| Failure::failed(format!("http client: {e}")))
}

/// Why a call to a daemon failed, with its causes ("error sending request" alone hides a
/// certificate the CA did not sign) and without the URL, which the caller names.
pub fn describe(e: reqwest::Error) -> String {
    drover_adapters::error_chain(&e.without_url())
}

/// Whether a call failed because the daemon's certificate was not trusted (wrong CA, wrong
/// name, expired): a setting to fix, not a daemon or network to wait for.
pub fn certificate_refused(e: &reqwest::Error) -> bool {
    drover_adapters::tls::certificate_refused(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_never_goes_in_clear_off_loopback() {
        for ok in ["https://10.0.0.2:7070", "http://127.0.0.1:7070", "http://localhost:7070", "http://[::1]:7070"] {
            check_url("--server", ok).unwrap();
        }
        let e = check_url("--server", "http://10.0.0.2:7070").unwrap_err();
        assert!(e.message.contains("plain http:// is for loopback only"), "{}", e.message);
        assert!(check_url("--peer", "10.0.0.2:7070").is_err());
        assert!(check_url("--peer", "ftp://10.0.0.2").is_err());
    }
}
