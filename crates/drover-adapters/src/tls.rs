//! TLS settings read from PEM files, one place for every connection drover makes or
//! serves over rustls (the API and its peers, PostgreSQL, the lab). Each error names
//! the file and what is wrong with it, so a bad path or a swapped key and certificate
//! is refused before anything connects.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// A TLS file that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
#[error("{}: {cause}", path.display())]
pub struct TlsError {
    pub path: PathBuf,
    pub cause: String,
}

impl TlsError {
    fn new(path: &Path, cause: impl Into<String>) -> TlsError {
        TlsError { path: path.to_path_buf(), cause: cause.into() }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM file (a chain, or a CA bundle); none is an error.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let text = std::fs::read(path).map_err(|e| TlsError::new(path, crate::errors::describe_io(&e)))?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::new(path, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::new(path, "holds no certificate (expected -----BEGIN CERTIFICATE-----)"));
    }
    Ok(certs)
}

/// The private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
/// A key file is a secret file: refused when its group or others can open it.
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let text = crate::secret_file::read_bytes(path).map_err(|e| match e {
        crate::secret_file::SecretFileError::Io(e) => TlsError::new(path, crate::errors::describe_io(&e)),
        crate::secret_file::SecretFileError::OpenToOthers { why, .. } => TlsError::new(path, why),
    })?;
    PrivateKeyDer::from_pem_slice(&text).map_err(|e| TlsError::new(path, format!("holds no usable private key: {e}")))
}

/// The CAs in a PEM file as a root store: only servers (or clients) they signed are trusted.
pub fn roots(ca_file: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca_file)? {
        roots.add(cert).map_err(|e| TlsError::new(ca_file, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// A client that trusts only the CAs in `ca_file` and checks the server's name, and
/// presents `identity` (certificate chain, key) when the server asks for one.
pub fn client_config(ca_file: &Path, identity: Option<(&Path, &Path)>) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::new(ca_file, e.to_string()))?
        .with_root_certificates(roots(ca_file)?);
    match identity {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => builder
            .with_client_auth_cert(certificates(cert)?, private_key(key)?)
            .map_err(|e| TlsError::new(key, format!("does not match {}: {e}", cert.display()))),
    }
}

/// A server presenting `cert` (its chain) with `key`; with `client_ca`, every client must
/// present a certificate that CA signed.
pub fn server_config(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<ServerConfig, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::new(cert, e.to_string()))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider())
                    .build()
                    .map_err(|e| TlsError::new(ca, format!("cannot verify clients with it: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder
        .with_single_cert(certificates(cert)?, private_key(key)?)
        .map_err(|e| TlsError::new(key, format!("does not match {}: {e}", cert.display())))
}

/// The rustls error behind a failed connection, wherever it sits in the source chain:
/// HTTP and PostgreSQL clients wrap it in `io::Error`s, sometimes one inside another,
/// and an `io::Error`'s `source()` skips the error it wraps, so each is opened by hand.
pub fn rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    if let Some(found) = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).and_then(|inner| {
        let inner: &(dyn std::error::Error + 'static) = inner;
        rustls_error(inner)
    }) {
        return Some(found);
    }
    e.source().and_then(rustls_error)
}

/// Whether a connection failed because the peer's certificate was not trusted (wrong CA,
/// wrong name, expired): a setting to fix, which trying again cannot help.
pub fn certificate_refused(e: &(dyn std::error::Error + 'static)) -> bool {
    matches!(rustls_error(e), Some(rustls::Error::InvalidCertificate(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_error_is_found_inside_nested_io_errors() {
        let bad = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let inner = std::io::Error::new(std::io::ErrorKind::InvalidData, bad);
        let outer = std::io::Error::other(inner);
        assert!(certificate_refused(&outer));
        assert!(!certificate_refused(&std::io::Error::other("connection refused")));
    }

    #[test]
    fn a_missing_or_wrong_file_is_named_with_its_cause() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("ca.pem");
        let e = roots(&missing).unwrap_err();
        assert!(e.to_string().starts_with(&missing.display().to_string()), "{e}");

        let not_pem = dir.path().join("key.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        // Its owner's alone, as a key file must be (`secret_file`).
        std::fs::set_permissions(&not_pem, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let e = roots(&not_pem).unwrap_err();
        assert!(e.to_string().contains("holds no certificate"), "{e}");
        let e = private_key(&not_pem).unwrap_err();
        assert!(e.to_string().contains("no usable private key"), "{e}");
    }
}
