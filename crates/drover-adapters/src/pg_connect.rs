//! The one way drover connects to PostgreSQL: libpq's `sslmode` and `sslrootcert` over
//! rustls, for the provider, the checks and the lab alike.
//!
//! tokio-postgres knows only `sslmode` disable, prefer and require, and no `sslrootcert`
//! at all (a DSN naming it does not parse). So both are read here, removed from the DSN,
//! and mapped as libpq documents them:
//!
//! | sslmode | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `allow` | only if a plain connection is refused | as `require` |
//! | `prefer` (the default) | if the server offers it; plain if TLS fails | as `require` |
//! | `require` | always | not checked; with `sslrootcert`, its chain is (libpq: "the same as verify-ca") |
//! | `verify-ca` | always | signed by a CA in `sslrootcert` |
//! | `verify-full` | always | signed by a CA in `sslrootcert` and valid for the host (a name or an IP address) |
//!
//! `verify-ca` and `verify-full` need `sslrootcert`: libpq's fallback, the user's
//! `~/.postgresql/root.crt`, would make drover's trust depend on whose home it runs in.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio_postgres::config::SslMode as WireMode;
use tokio_postgres::{Client, Config};
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    const ALL: [SslMode; 6] =
        [SslMode::Disable, SslMode::Allow, SslMode::Prefer, SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull];

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn parse(value: &str) -> Result<SslMode, DsnError> {
        SslMode::ALL.into_iter().find(|m| m.as_str() == value).ok_or_else(|| {
            let known: Vec<_> = SslMode::ALL.iter().map(|m| m.as_str()).collect();
            DsnError(format!("sslmode={value} is not one of {}", known.join(", ")))
        })
    }
}

/// A connection string drover cannot use. The text names the parameter or file and the
/// cause, and never holds the connection string (it may carry a password).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DsnError(pub String);

/// A parsed connection string and the TLS it asks for: connects as libpq would.
#[derive(Clone)]
pub struct PgConnector {
    config: Config,
    mode: SslMode,
    /// Whether the DSN named `sslmode` itself (then it is passed on to pg_rewind and friends).
    mode_given: bool,
    root_cert: Option<PathBuf>,
    tls: MakeRustlsConnect,
}

impl std::fmt::Debug for PgConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Config's Debug hides the password, but the host and user are enough here.
        f.debug_struct("PgConnector").field("sslmode", &self.mode).field("sslrootcert", &self.root_cert).finish()
    }
}

impl PgConnector {
    /// Parses a key=value or URL connection string, reading `sslrootcert` now so a bad
    /// file is refused before anything connects.
    pub fn parse(dsn: &str) -> Result<PgConnector, DsnError> {
        let Split { rest, sslmode, sslrootcert } = split_ssl_params(dsn)?;
        let mut config = Config::from_str(&rest).map_err(|_| syntax())?;
        let mode = sslmode.as_deref().map(SslMode::parse).transpose()?;
        let mode_given = mode.is_some();
        let mode = mode.unwrap_or(SslMode::Prefer);
        let root_cert = sslrootcert.map(PathBuf::from);
        if root_cert.as_deref() == Some(Path::new("system")) {
            return Err(DsnError(
                "sslrootcert=system (the operating system's CAs) is not supported: name the file of the CA that \
                 signed the server's certificate"
                    .into(),
            ));
        }
        if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && root_cert.is_none() {
            return Err(DsnError(format!(
                "sslmode={} needs sslrootcert=<file of the CA that signed the server's certificate>",
                mode.as_str()
            )));
        }
        let tls = client_tls(mode, root_cert.as_deref())?;
        config.ssl_mode(match mode {
            SslMode::Disable | SslMode::Allow => WireMode::Disable,
            SslMode::Prefer => WireMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => WireMode::Require,
        });
        Ok(PgConnector { config, mode, mode_given, root_cert, tls })
    }

    /// tokio-postgres's settings (everything but the TLS), to read or adjust (timeouts, names).
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn config_mut(&mut self) -> &mut Config {
        &mut self.config
    }

    pub fn ssl_mode(&self) -> SslMode {
        self.mode
    }

    pub fn root_cert(&self) -> Option<&Path> {
        self.root_cert.as_deref()
    }

    /// The TLS parameters the DSN named, for a connection string drover hands to libpq
    /// tools (pg_rewind, pg_basebackup, primary_conninfo): the same protection there.
    pub fn libpq_params(&self) -> Vec<(&'static str, String)> {
        let mut params = Vec::new();
        if self.mode_given {
            params.push(("sslmode", self.mode.as_str().to_string()));
        }
        if let Some(root) = &self.root_cert {
            params.push(("sslrootcert", root.display().to_string()));
        }
        params
    }

    /// Connects; the connection's task runs until the client is dropped. `allow` and
    /// `prefer` try the other way once when the first is refused, as libpq does.
    pub async fn connect(&self) -> Result<Client, tokio_postgres::Error> {
        let first = self.config.connect(self.tls.clone()).await;
        // pg_hba.conf refusing this kind of connection (`hostssl` or `hostnossl` lines) is
        // SQLSTATE 28000; a wrong password (28P01) would fail the other way too.
        let refused = |e: &tokio_postgres::Error| {
            e.code() == Some(&tokio_postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
        };
        let (client, connection) = match (first, self.mode) {
            (Ok(pair), _) => pair,
            (Err(e), SslMode::Allow) if refused(&e) => {
                let mut tls = self.config.clone();
                tls.ssl_mode(WireMode::Require);
                tls.connect(self.tls.clone()).await?
            }
            (Err(e), SslMode::Prefer) if refused(&e) || tls_failure(&e).is_some() => {
                let mut plain = self.config.clone();
                plain.ssl_mode(WireMode::Disable);
                plain.connect(self.tls.clone()).await?
            }
            (Err(e), _) => return Err(e),
        };
        tokio::spawn(async move {
            // Errors surface on the client's next call; nothing to do here.
            let _ = connection.await;
        });
        Ok(client)
    }

    /// A connection failure in a user's words: a TLS failure says what was checked and
    /// what to fix; anything else is `None` (the caller describes it as before).
    pub fn describe_tls(&self, e: &tokio_postgres::Error) -> Option<String> {
        let mode = self.mode.as_str();
        let root = || self.root_cert.as_deref().map_or_else(|| "sslrootcert".into(), |p| p.display().to_string());
        if let Some(tls) = tls_failure(e) {
            let what = match tls {
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer | CertificateError::BadSignature) => {
                    format!(
                        "the server's certificate is not signed by the CA in {} (is sslrootcert the CA that \
                         issued it?)",
                        root()
                    )
                }
                rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { expected, presented }) => {
                    let host = match expected {
                        ServerName::DnsName(name) => name.as_ref().to_string(),
                        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
                        other => format!("{other:?}"),
                    };
                    format!(
                        "the server's certificate is not valid for {host} (it is for {}; sslmode={mode} checks the \
                         host) — connect by a name or address the certificate holds, or use sslmode=verify-ca",
                        presented.iter().map(|n| bare_name(n)).collect::<Vec<_>>().join(", ")
                    )
                }
                rustls::Error::InvalidCertificate(CertificateError::NotValidForName) => format!(
                    "the server's certificate is not valid for the host (sslmode={mode} checks it) — connect by \
                     a name or address the certificate holds, or use sslmode=verify-ca"
                ),
                rustls::Error::InvalidCertificate(
                    CertificateError::Expired | CertificateError::ExpiredContext { .. },
                ) => "the server's certificate has expired".into(),
                rustls::Error::InvalidCertificate(
                    CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
                ) => "the server's certificate is not valid yet (is this host's clock right?)".into(),
                other => other.to_string(),
            };
            return Some(format!("TLS (sslmode={mode}): {what}"));
        }
        // tokio-postgres's own words when the server answers "no TLS here" to sslmode=require.
        if crate::errors::chain(e).contains("server does not support TLS") {
            return Some(format!(
                "TLS (sslmode={mode}): the server does not accept TLS connections (ssl = off) — turn ssl on, or \
                 lower sslmode"
            ));
        }
        None
    }
}

/// tokio-postgres's reading of a DSN, its TLS parameters aside (no file is read): for
/// looking at its parts (the password, to redact it).
pub fn parse_config(dsn: &str) -> Result<Config, DsnError> {
    Config::from_str(&split_ssl_params(dsn)?.rest).map_err(|_| syntax())
}

/// `DnsName("db.example")` → `db.example`, `IpAddress(10.0.0.1)` → `10.0.0.1`: rustls's
/// list of the names a certificate holds, in a user's words.
fn bare_name(presented: &str) -> &str {
    let inner = presented
        .strip_prefix("DnsName(")
        .or_else(|| presented.strip_prefix("IpAddress("))
        .and_then(|rest| rest.strip_suffix(')'));
    inner.map_or(presented, |name| name.trim_matches('"'))
}

/// Whether a connection failed because the server's certificate was refused: trying
/// again cannot help (the certificate, the CA file or the host in the DSN must change).
pub fn certificate_refused(e: &tokio_postgres::Error) -> bool {
    crate::tls::certificate_refused(e)
}

/// The rustls error behind a failed TLS handshake, if that is what failed.
fn tls_failure(e: &tokio_postgres::Error) -> Option<&rustls::Error> {
    crate::tls::rustls_error(e)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls client `mode` needs: no check at all (encryption only), the chain only, or
/// the chain and the host.
fn client_tls(mode: SslMode, root_cert: Option<&Path>) -> Result<MakeRustlsConnect, DsnError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| DsnError(format!("TLS: {e}")))?;
    let roots = match root_cert {
        // libpq reads no CA file for a connection that never uses TLS.
        Some(_) if mode == SslMode::Disable => None,
        Some(path) => Some(Arc::new(crate::tls::roots(path).map_err(|e| DsnError(format!("sslrootcert: {e}")))?)),
        None => None,
    };
    // verify-ca and verify-full always have roots here: `parse` refuses them without.
    let config = match (mode, roots) {
        (_, None) => {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(Unchecked(provider))).with_no_client_auth()
        }
        (SslMode::VerifyFull, Some(roots)) => builder.with_root_certificates(roots).with_no_client_auth(),
        (_, Some(roots)) => {
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| DsnError(format!("sslrootcert: cannot verify servers with it: {e}")))?;
            builder.dangerous().with_custom_certificate_verifier(Arc::new(ChainOnly(webpki))).with_no_client_auth()
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

/// `require` without a CA (and `allow`, `prefer`): encrypted, the server not identified —
/// libpq's meaning. The handshake's signatures are still checked.
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a CA in sslrootcert; the name is not looked at.
/// webpki checks the chain before the name, so a name error means the chain was good.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// A DSN without its TLS parameters, and their values (the last one given wins, as in libpq).
#[derive(Debug, PartialEq, Eq)]
struct Split {
    rest: String,
    sslmode: Option<String>,
    sslrootcert: Option<String>,
}

fn syntax() -> DsnError {
    DsnError("the connection string does not parse — check its syntax (key=value pairs or a postgresql:// URL)".into())
}

fn split_ssl_params(dsn: &str) -> Result<Split, DsnError> {
    let url = ["postgres://", "postgresql://"].iter().any(|p| dsn.starts_with(p));
    if url { split_url(dsn) } else { split_keywords(dsn) }
}

/// URL form: the parameters after `?` (found, as tokio-postgres and libpq do, after the
/// credentials, whose password may hold a `?`).
fn split_url(dsn: &str) -> Result<Split, DsnError> {
    let after_credentials = dsn.find('@').map_or(0, |at| at + 1);
    let Some(q) = dsn[after_credentials..].find('?').map(|q| q + after_credentials) else {
        return Ok(Split { rest: dsn.to_string(), sslmode: None, sslrootcert: None });
    };
    let (mut sslmode, mut sslrootcert) = (None, None);
    let mut kept = Vec::new();
    for pair in dsn[q + 1..].split('&') {
        let (key, value) = pair.split_once('=').ok_or_else(syntax)?;
        let decode = |s: &str| percent_decode(s).ok_or_else(syntax);
        match decode(key)?.as_str() {
            "sslmode" => sslmode = Some(decode(value)?),
            "sslrootcert" => sslrootcert = Some(decode(value)?),
            _ => kept.push(pair),
        }
    }
    let base = &dsn[..q];
    let rest = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    Ok(Split { rest, sslmode, sslrootcert })
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// key=value form, read by libpq's rules (spaces around `=`, single-quoted values,
/// backslash escapes) and written back with every value quoted.
fn split_keywords(dsn: &str) -> Result<Split, DsnError> {
    let (mut sslmode, mut sslrootcert) = (None, None);
    let mut kept = Vec::new();
    let mut chars = dsn.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        if key.is_empty() {
            if chars.peek().is_some() {
                return Err(syntax());
            }
            break;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(syntax());
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => return Err(syntax()),
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
            if value.is_empty() {
                return Err(syntax());
            }
        }
        match key.as_str() {
            "sslmode" => sslmode = Some(value),
            "sslrootcert" => sslrootcert = Some(value),
            _ => kept.push(format!("{key}='{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))),
        }
    }
    Ok(Split { rest: kept.join(" "), sslmode, sslrootcert })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(dsn: &str) -> Split {
        split_ssl_params(dsn).unwrap()
    }

    #[test]
    fn url_parameters_are_taken_out_and_the_rest_kept_as_written() {
        let s =
            split("postgres://u:p%3Fw@db:5432/app?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca.pem");
        assert_eq!(s.rest, "postgres://u:p%3Fw@db:5432/app?application_name=x");
        assert_eq!(s.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(s.sslrootcert.as_deref(), Some("/etc/ca.pem"));

        let s = split("postgresql://u:pw@db/app?sslmode=require");
        assert_eq!((s.rest.as_str(), s.sslmode.as_deref()), ("postgresql://u:pw@db/app", Some("require")));
        // A `?` in the password is not where the parameters start.
        let s = split("postgresql://u:a?b@db/app");
        assert_eq!((s.rest.as_str(), s.sslmode), ("postgresql://u:a?b@db/app", None));
    }

    #[test]
    fn keyword_parameters_are_taken_out_and_the_rest_quoted_back() {
        let s = split("host=db port = 5432 sslmode=verify-ca sslrootcert='/a b/ca.pem' user=x\\ y");
        assert_eq!(s.sslmode.as_deref(), Some("verify-ca"));
        assert_eq!(s.sslrootcert.as_deref(), Some("/a b/ca.pem"));
        let config = Config::from_str(&s.rest).unwrap();
        assert_eq!(config.get_user(), Some("x y"));
        assert_eq!(config.get_ports(), [5432]);
        // The password comes back exactly as tokio-postgres reads the original.
        let original = Config::from_str("host=db password='it\\'s'").unwrap();
        let rebuilt = Config::from_str(&split("host=db password='it\\'s' sslmode=disable").rest).unwrap();
        assert_eq!(rebuilt.get_password(), original.get_password());
        assert_eq!(rebuilt.get_password(), Some(&b"it's"[..]));
    }

    #[test]
    fn the_last_sslmode_wins_and_a_dsn_without_one_prefers_tls_as_libpq_does() {
        let c = PgConnector::parse("host=db sslmode=disable sslmode=require").unwrap();
        assert_eq!(c.ssl_mode(), SslMode::Require);
        let c = PgConnector::parse("postgres://u@db/app").unwrap();
        assert_eq!(c.ssl_mode(), SslMode::Prefer);
        assert_eq!(c.config().get_ssl_mode(), WireMode::Prefer);
        assert!(c.libpq_params().is_empty(), "nothing the DSN did not say is passed on");
        let c = PgConnector::parse("host=db sslmode=allow").unwrap();
        assert_eq!(c.config().get_ssl_mode(), WireMode::Disable, "allow starts plain");
        // No TLS, so no CA file is read (as libpq), even one that is not there.
        let c = PgConnector::parse("host=db sslmode=disable sslrootcert=/nonexistent/ca.pem").unwrap();
        assert_eq!(c.config().get_ssl_mode(), WireMode::Disable);
    }

    #[test]
    fn a_bad_sslmode_or_root_cert_is_named_without_the_password() {
        let e = PgConnector::parse("postgres://u:hunter2@db/app?sslmode=verfy-full").unwrap_err();
        assert!(e.0.starts_with("sslmode=verfy-full is not one of disable, allow, prefer, require"), "{e}");
        assert!(!e.0.contains("hunter2"));

        let e = PgConnector::parse("host=db password=hunter2 sslmode=verify-full").unwrap_err();
        assert!(e.0.contains("sslmode=verify-full needs sslrootcert"), "{e}");
        assert!(!e.0.contains("hunter2"));

        let e =
            PgConnector::parse("host=db password=hunter2 sslmode=require sslrootcert=/nonexistent/ca.pem").unwrap_err();
        assert!(e.0.starts_with("sslrootcert: /nonexistent/ca.pem: "), "{e}");
        assert!(!e.0.contains("hunter2"));

        let e = PgConnector::parse("host=db password='hunter2").unwrap_err();
        assert!(e.0.contains("does not parse") && !e.0.contains("hunter2"), "{e}");
        let e = PgConnector::parse("postgres://u:hunter2@db/app?sslrootcert=system&sslmode=verify-full").unwrap_err();
        assert!(e.0.contains("sslrootcert=system"), "{e}");
    }

    #[test]
    fn names_in_a_certificate_are_shown_bare() {
        assert_eq!(bare_name("DnsName(\"db.example\")"), "db.example");
        assert_eq!(bare_name("IpAddress(10.200.0.11)"), "10.200.0.11");
        assert_eq!(bare_name("URI(x)"), "URI(x)");
    }

    #[test]
    fn the_tls_parameters_given_are_the_ones_passed_on() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::default().self_signed(&key).unwrap();
        std::fs::write(&ca, cert.pem()).unwrap();
        let dsn = format!("host=db sslmode=verify-full sslrootcert={}", ca.display());
        let c = PgConnector::parse(&dsn).unwrap();
        assert_eq!(
            c.libpq_params(),
            vec![("sslmode", "verify-full".to_string()), ("sslrootcert", ca.display().to_string())]
        );
        assert_eq!(c.config().get_ssl_mode(), WireMode::Require);
    }
}
