//! The lab's own certificate authority, made at `lab up`: every TLS endpoint in the lab
//! (PostgreSQL, etcd, the daemons' API) presents a certificate it signed for the
//! region's address, and every client trusts it alone, so the lab exercises the
//! same verification (`verify-full`, https with a CA file) a production setup uses.
//! The CA's key lives in the lab's secrets dir and dies with the lab.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, SanType};

use crate::LabError;
use crate::sys;

/// A certificate and its key as files.
#[derive(Clone, Debug)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The CA: its certificate (which clients trust) and the issuer that signs with it.
pub struct LabCa {
    cert_file: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    dir: PathBuf,
}

fn failed(what: &str, e: impl std::fmt::Display) -> LabError {
    LabError::failed(format!("lab CA: {what}: {e}"))
}

impl LabCa {
    /// Makes a new CA in `dir` (created 0700): `ca.pem` and `ca.key`.
    pub fn create(dir: &Path) -> Result<LabCa, LabError> {
        sys::create_dir(dir, 0o700)?;
        let key = KeyPair::generate().map_err(|e| failed("key", e))?;
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, "drover lab CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        let cert = params.self_signed(&key).map_err(|e| failed("certificate", e))?;
        let cert_file = dir.join("ca.pem");
        sys::write_file(&cert_file, &cert.pem())?;
        sys::write_private(&dir.join("ca.key"), &key.serialize_pem())?;
        let issuer = Issuer::new(params, key);
        Ok(LabCa { cert_file, issuer, dir: dir.to_path_buf() })
    }

    /// The CA certificate every lab client trusts.
    pub fn cert_file(&self) -> &Path {
        &self.cert_file
    }

    /// A certificate for `name` (its common name) valid for `ips` and `dns_names`, usable
    /// by servers and, for mutual TLS, as a client: `<name>.pem` and `<name>.key` (0600).
    pub fn issue(&self, name: &str, ips: &[IpAddr], dns_names: &[&str]) -> Result<Issued, LabError> {
        let key = KeyPair::generate().map_err(|e| failed(name, e))?;
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.subject_alt_names = ips.iter().map(|ip| SanType::IpAddress(*ip)).collect();
        for dns in dns_names {
            params.subject_alt_names.push(SanType::DnsName((*dns).try_into().map_err(|e| failed(dns, e))?));
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).map_err(|e| failed(name, e))?;
        let issued = Issued { cert: self.dir.join(format!("{name}.pem")), key: self.dir.join(format!("{name}.key")) };
        sys::write_file(&issued.cert, &cert.pem())?;
        sys::write_private(&issued.key, &key.serialize_pem())?;
        Ok(issued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;

    #[test]
    fn a_certificate_the_ca_issued_is_trusted_by_a_client_of_that_ca_for_its_address_only() {
        let dir = tempfile::tempdir().unwrap();
        let ca = LabCa::create(&dir.path().join("pki")).unwrap();
        let ip: IpAddr = "10.200.0.11".parse().unwrap();
        let issued = ca.issue("east", &[ip], &["east.lab"]).unwrap();
        // The files load as a server and a client of the CA.
        drover_adapters::tls::server_config(&issued.cert, &issued.key, Some(ca.cert_file())).unwrap();
        drover_adapters::tls::client_config(ca.cert_file(), Some((&issued.cert, &issued.key))).unwrap();
        let mode = std::fs::metadata(&issued.key).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);

        // Verified as rustls would for a connection to 10.200.0.11, and not to .12.
        let roots = drover_adapters::tls::roots(ca.cert_file()).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            std::sync::Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let cert = drover_adapters::tls::certificates(&issued.cert).unwrap().remove(0);
        let now = rustls::pki_types::UnixTime::now();
        let to = |addr: &str| rustls::pki_types::ServerName::try_from(addr.to_string()).unwrap();
        verifier.verify_server_cert(&cert, &[], &to("10.200.0.11"), &[], now).unwrap();
        verifier.verify_server_cert(&cert, &[], &to("east.lab"), &[], now).unwrap();
        assert!(verifier.verify_server_cert(&cert, &[], &to("10.200.0.12"), &[], now).is_err());
    }
}
