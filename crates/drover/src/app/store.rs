//! Where a plan's runs are kept: the journal (the embedded redb file beside the plan, or
//! etcd shared by drovers in several regions), as the front ends' flags name it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use drover_core::journal::Journal;
use drover_core::secret::Secret;
use drover_store::{EtcdAccess, EtcdJournal, EtcdTls, EtcdUser, RedbJournal};

use crate::app::error::{Failure, store_failure};

/// The plan and where its journal lives, as every command that reads or changes runs and
/// `drover serve` take them (the same flags, hence the one definition, here).
#[derive(clap::Args, Clone, Debug)]
pub struct PlanArgs {
    /// The plan file (YAML); see docs/plan.md.
    #[arg(long, short = 'p', value_name = "PLAN")]
    pub plan: PathBuf,
    /// Where the journal lives [default: .drover/ beside the plan file].
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Keep the journal and epoch in etcd instead, shared by drovers in several regions:
    /// etcd://HOST:PORT[,HOST:PORT...][/PREFIX] (prefix default /drover), or etcds://... for
    /// members that serve TLS (then give --etcd-ca).
    #[arg(long, value_name = "URL", conflicts_with = "state")]
    pub store: Option<String>,
    #[command(flatten)]
    pub etcd: EtcdArgs,
}

/// How to reach an etcd store that wants TLS or a user (`--store etcds://...`).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct EtcdArgs {
    /// With --store etcds://: the CA certificate (PEM) that signed the etcd members' certificates;
    /// only members it signed, for the address dialled, are trusted.
    #[arg(long, value_name = "FILE")]
    pub etcd_ca: Option<PathBuf>,
    /// With etcds://, when the members want a client certificate (etcd --client-cert-auth):
    /// this certificate (PEM), with --etcd-key.
    #[arg(long, value_name = "FILE")]
    pub etcd_cert: Option<PathBuf>,
    /// The private key (PEM) of --etcd-cert.
    #[arg(long, value_name = "FILE")]
    pub etcd_key: Option<PathBuf>,
    /// The etcd user to authenticate as, when the cluster has auth enabled; its password comes
    /// from --etcd-password-file or the environment variable DROVER_ETCD_PASSWORD, never from
    /// the command line.
    #[arg(long, value_name = "NAME")]
    pub etcd_user: Option<String>,
    /// A file holding the password of --etcd-user (one line; keep it 0600). Read at start:
    /// after a password change, restart.
    #[arg(long, value_name = "FILE")]
    pub etcd_password_file: Option<PathBuf>,
}

/// Where the password of `--etcd-user` may come from besides a file.
pub const ETCD_PASSWORD_ENV: &str = "DROVER_ETCD_PASSWORD";

fn state_dir(args: &PlanArgs) -> PathBuf {
    args.state.clone().unwrap_or_else(|| plan_dir(&args.plan).join(".drover"))
}

pub fn plan_dir(plan: &Path) -> PathBuf {
    match plan.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The journal the plan's runs are kept in: the embedded redb file under the state
/// directory, or etcd (`--store etcd://...`).
pub async fn open_journal(args: &PlanArgs) -> Result<Arc<dyn Journal>, Failure> {
    match etcd_store(args)? {
        None => Ok(Arc::new(RedbJournal::open(&state_dir(args)).map_err(store_failure)?)),
        Some(EtcdStore { access, prefix }) => {
            Ok(Arc::new(EtcdJournal::connect(&access, &prefix).await.map_err(store_failure)?))
        }
    }
}

/// An etcd store: how to reach its members and the key prefix of this plan.
#[derive(Clone, Debug)]
pub struct EtcdStore {
    pub access: EtcdAccess,
    pub prefix: String,
}

impl EtcdStore {
    /// The key the daemons' leader election runs on.
    pub fn election_key(&self) -> String {
        format!("{}/leader", self.prefix)
    }
}

/// The etcd store `--store` names, if any, with its TLS files and user read and checked:
/// a missing or unreadable file, or flags that do not go together, are refused here,
/// before anything connects.
pub fn etcd_store(args: &PlanArgs) -> Result<Option<EtcdStore>, Failure> {
    let etcd = &args.etcd;
    let Some(url) = args.store.as_deref() else {
        let given = [
            (etcd.etcd_ca.is_some(), "--etcd-ca"),
            (etcd.etcd_cert.is_some(), "--etcd-cert"),
            (etcd.etcd_key.is_some(), "--etcd-key"),
            (etcd.etcd_user.is_some(), "--etcd-user"),
            (etcd.etcd_password_file.is_some(), "--etcd-password-file"),
        ];
        if let Some((_, flag)) = given.iter().find(|(given, _)| *given) {
            return Err(Failure::input(format!(
                "{flag} is for an etcd store: give --store etcds://HOST:PORT[,...][/PREFIX] too, or drop {flag}"
            )));
        }
        return Ok(None);
    };
    let parsed = parse_etcd_url(url)?;
    let tls = tls(url, &parsed, etcd)?;
    let user = user(etcd)?;
    Ok(Some(EtcdStore { access: EtcdAccess { members: parsed.members, tls, user }, prefix: parsed.prefix }))
}

fn tls(url: &str, parsed: &EtcdUrl, etcd: &EtcdArgs) -> Result<Option<EtcdTls>, Failure> {
    let identity = match (&etcd.etcd_cert, &etcd.etcd_key) {
        (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
        (None, None) => None,
        (Some(_), None) => {
            return Err(Failure::input(
                "--etcd-cert needs --etcd-key (the client certificate's private key): give both, or neither",
            ));
        }
        (None, Some(_)) => {
            return Err(Failure::input(
                "--etcd-key needs --etcd-cert (the client certificate it belongs to): give both, or neither",
            ));
        }
    };
    if !parsed.tls {
        let flag = if etcd.etcd_ca.is_some() {
            Some(("--etcd-ca", "is"))
        } else {
            identity.map(|_| ("--etcd-cert and --etcd-key", "are"))
        };
        return match flag {
            Some((flag, is)) => Err(Failure::input(format!(
                "--store {url} is plain HTTP (etcd://) and {flag} {is} for TLS: write etcds://... if the members \
                 serve TLS, or drop {flag}"
            ))),
            None => Ok(None),
        };
    }
    let Some(ca) = &etcd.etcd_ca else {
        return Err(Failure::input(format!(
            "--store {url}: etcds:// needs --etcd-ca FILE, the CA certificate (PEM) that signed the etcd members' \
             certificates (etcd's --trusted-ca-file usually)"
        )));
    };
    // The shared TLS reader checks the files as rustls will use them (a CA that is no
    // certificate, a key that does not match), naming the file.
    drover_adapters::tls::client_config(ca, identity)
        .map_err(|e| Failure::input(format!("--etcd-ca/--etcd-cert: {e}")))?;
    EtcdTls::load(ca, identity).map(Some).map_err(Failure::input)
}

fn user(etcd: &EtcdArgs) -> Result<Option<EtcdUser>, Failure> {
    let Some(name) = &etcd.etcd_user else {
        if let Some(file) = &etcd.etcd_password_file {
            return Err(Failure::input(format!(
                "--etcd-password-file {}: give --etcd-user NAME too (the user whose password it is)",
                file.display()
            )));
        }
        return Ok(None);
    };
    if name.trim().is_empty() {
        return Err(Failure::input("--etcd-user: the name is empty"));
    }
    let password = match &etcd.etcd_password_file {
        Some(file) => {
            let text = drover_adapters::secret_file::read(file).map_err(|e| {
                let io = |e| format!("--etcd-password-file {}: cannot read it: {e}", file.display());
                Failure::input(e.describe(io, "--etcd-password-file"))
            })?;
            let password = text.trim_end_matches(['\n', '\r']).to_string();
            if password.is_empty() {
                return Err(Failure::input(format!("--etcd-password-file {}: the file is empty", file.display())));
            }
            password
        }
        None => match std::env::var(ETCD_PASSWORD_ENV) {
            Ok(password) if !password.is_empty() => password,
            _ => {
                return Err(Failure::input(format!(
                    "--etcd-user {name}: give its password with --etcd-password-file FILE or the environment \
                     variable {ETCD_PASSWORD_ENV} (never on the command line)"
                )));
            }
        },
    };
    Ok(Some(EtcdUser { name: name.clone(), password: Secret::new(password) }))
}

/// A parsed `--store` URL.
#[derive(Debug)]
struct EtcdUrl {
    tls: bool,
    /// `HOST:PORT` of each member.
    members: Vec<String>,
    prefix: String,
}

/// `etcd://h1:2379,h2:2379/prefix` -> plain HTTP to h1:2379 and h2:2379, keys under "/prefix";
/// `etcds://` the same over TLS.
fn parse_etcd_url(url: &str) -> Result<EtcdUrl, Failure> {
    let bad = |why: &str| {
        Failure::input(format!(
            "--store {url}: {why}; write etcd://HOST:PORT[,HOST:PORT...][/PREFIX] (etcds:// for TLS)"
        ))
    };
    let (tls, rest) = match (url.strip_prefix("etcds://"), url.strip_prefix("etcd://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        (None, None) => return Err(bad("only etcd:// and etcds:// stores are known")),
    };
    let (hosts, prefix) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p.trim_matches('/')));
    let prefix = if prefix.is_empty() { "/drover".to_string() } else { format!("/{prefix}") };
    let members: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| {
            if h.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok()) {
                Ok(h.to_string())
            } else {
                Err(bad(&format!("'{h}' is not HOST:PORT")))
            }
        })
        .collect::<Result<_, _>>()?;
    if members.is_empty() {
        return Err(bad("no host given"));
    }
    Ok(EtcdUrl { tls, members, prefix })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::error::ErrorClass;

    #[test]
    fn etcd_store_urls_name_every_member_and_a_prefix() {
        let url = parse_etcd_url("etcd://10.0.0.1:2379,10.0.0.2:2379/prod/shop/").unwrap();
        assert_eq!(url.members, ["10.0.0.1:2379", "10.0.0.2:2379"]);
        assert_eq!(url.prefix, "/prod/shop");
        assert!(!url.tls);
        assert_eq!(parse_etcd_url("etcd://127.0.0.1:2379").unwrap().prefix, "/drover");
        assert!(parse_etcd_url("etcds://127.0.0.1:2379").unwrap().tls);
        for bad in ["redis://x:1", "etcd://", "etcd://host", "etcd://host:port", "https://h:1"] {
            let e = parse_etcd_url(bad).err().unwrap_or_else(|| panic!("{bad} accepted"));
            assert_eq!(e.class, ErrorClass::Input);
            assert!(e.message.contains("write etcd://HOST:PORT"), "{}", e.message);
        }
    }

    fn args(store: &str, etcd: EtcdArgs) -> PlanArgs {
        PlanArgs { plan: "plan.yaml".into(), state: None, store: Some(store.into()), etcd }
    }

    #[test]
    fn a_password_file_is_read_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret-value\n").unwrap();
        // A secret file: open to its owner alone, or it is refused (drover_adapters::secret_file).
        std::fs::set_permissions(&file, <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600))
            .unwrap();
        let etcd = EtcdArgs { etcd_user: Some("drover".into()), etcd_password_file: Some(file), ..EtcdArgs::default() };
        let store = etcd_store(&args("etcd://127.0.0.1:2379/x", etcd)).unwrap().unwrap();
        let user = store.access.user.as_ref().unwrap();
        assert_eq!((user.name.as_str(), user.password.expose()), ("drover", "s3cret-value"));
        assert!(!format!("{store:?}").contains("s3cret"), "{store:?}");
    }
}
