//! Where a plan's runs are kept: the journal (the embedded redb file beside the plan, or
//! etcd shared by drovers in several regions), as the front ends' flags name it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use drover_core::journal::Journal;
use drover_store::{EtcdJournal, RedbJournal};

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
    /// etcd://HOST:PORT[,HOST:PORT...][/PREFIX] (prefix default /drover).
    #[arg(long, value_name = "URL", conflicts_with = "state")]
    pub store: Option<String>,
}

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
        Some(EtcdStore { endpoints, prefix }) => {
            Ok(Arc::new(EtcdJournal::connect(&endpoints, &prefix).await.map_err(store_failure)?))
        }
    }
}

/// An etcd store: its members' client URLs and the key prefix of this plan.
#[derive(Clone, Debug)]
pub struct EtcdStore {
    pub endpoints: Vec<String>,
    pub prefix: String,
}

impl EtcdStore {
    /// The key the daemons' leader election runs on.
    pub fn election_key(&self) -> String {
        format!("{}/leader", self.prefix)
    }
}

/// The etcd store `--store` names, if any.
pub fn etcd_store(args: &PlanArgs) -> Result<Option<EtcdStore>, Failure> {
    args.store
        .as_deref()
        .map(|url| parse_etcd_url(url).map(|(endpoints, prefix)| EtcdStore { endpoints, prefix }))
        .transpose()
}

/// `etcd://h1:2379,h2:2379/prefix` -> (["http://h1:2379", "http://h2:2379"], "/prefix").
fn parse_etcd_url(url: &str) -> Result<(Vec<String>, String), Failure> {
    let bad =
        |why: &str| Failure::input(format!("--store {url}: {why}; write etcd://HOST:PORT[,HOST:PORT...][/PREFIX]"));
    let rest = url.strip_prefix("etcd://").ok_or_else(|| bad("only etcd:// stores are known"))?;
    let (hosts, prefix) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p.trim_matches('/')));
    let prefix = if prefix.is_empty() { "/drover".to_string() } else { format!("/{prefix}") };
    let endpoints: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| {
            if h.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok()) {
                Ok(format!("http://{h}"))
            } else {
                Err(bad(&format!("'{h}' is not HOST:PORT")))
            }
        })
        .collect::<Result<_, _>>()?;
    if endpoints.is_empty() {
        return Err(bad("no host given"));
    }
    Ok((endpoints, prefix))
}

#[cfg(test)]
mod tests {
    use super::parse_etcd_url;
    use crate::app::error::ErrorClass;

    #[test]
    fn etcd_store_urls_name_every_member_and_a_prefix() {
        let (endpoints, prefix) = parse_etcd_url("etcd://10.0.0.1:2379,10.0.0.2:2379/prod/shop/").unwrap();
        assert_eq!(endpoints, ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]);
        assert_eq!(prefix, "/prod/shop");
        assert_eq!(parse_etcd_url("etcd://127.0.0.1:2379").unwrap().1, "/drover");
        for bad in ["redis://x:1", "etcd://", "etcd://host", "etcd://host:port"] {
            let e = parse_etcd_url(bad).err().unwrap_or_else(|| panic!("{bad} accepted"));
            assert_eq!(e.class, ErrorClass::Input);
            assert!(e.message.contains("write etcd://HOST:PORT"), "{}", e.message);
        }
    }
}
