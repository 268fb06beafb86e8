//! `lab.json`: what a lab is made of and which processes run it. `up` writes it first; from
//! then on only the supervisor writes it (whole-file replace, so readers never see half).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::LabError;
use crate::layout::{BRIDGE, DNS_PORT, HUB_ADDRESS, LabDir, REGIONS, Role};
use crate::sys;

pub use drover_core::plan::Replication;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LabState {
    pub dir: PathBuf,
    pub replication: Replication,
    /// A `drover serve` daemon runs in every region (`lab up --daemons`).
    #[serde(default)]
    pub daemons: bool,
    /// The daemons coordinate through a 3-member etcd cluster, one member per region (`lab up --ha`).
    #[serde(default)]
    pub ha: bool,
    pub plan: PathBuf,
    pub hub: HubState,
    pub regions: Vec<RegionState>,
    /// The supervisor once it runs (it records itself): `down` signals it only while it is
    /// still this process.
    pub supervisor: Option<sys::Started>,
    /// Processes the supervisor started, by service name (`knot`, `postgres-east`, `app-west`, ...).
    #[serde(default)]
    pub services: BTreeMap<String, ServiceState>,
    pub created_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HubState {
    pub bridge: String,
    pub address: Ipv4Addr,
    pub dns: SocketAddr,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RegionState {
    pub name: String,
    /// The role the lab created it with; the database may since have moved (see `lab status`).
    pub role: Role,
    pub namespace: String,
    pub address: Ipv4Addr,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ServiceState {
    /// Set while the process runs, as the supervisor started it: `down` stops it by this
    /// record if the supervisor cannot.
    pub process: Option<sys::Started>,
    pub starts: u32,
    /// How the last run ended, e.g. `killed by SIGKILL`.
    pub last_exit: Option<String>,
}

impl LabState {
    pub fn new(dir: &LabDir, replication: Replication, daemons: bool, ha: bool) -> LabState {
        LabState {
            dir: dir.root().to_path_buf(),
            replication,
            daemons: daemons || ha,
            ha,
            plan: dir.plan(),
            hub: HubState {
                bridge: BRIDGE.into(),
                address: HUB_ADDRESS,
                dns: SocketAddr::new(HUB_ADDRESS.into(), DNS_PORT),
            },
            regions: REGIONS
                .iter()
                .map(|r| RegionState {
                    name: r.name.into(),
                    role: r.role,
                    namespace: r.namespace(),
                    address: r.address,
                })
                .collect(),
            supervisor: None,
            services: BTreeMap::new(),
            created_ms: sys::now_ms(),
        }
    }

    /// The state of the lab at `dir`, refused when the directory is not the lab's own (its
    /// pids and paths are believed only from a directory no one but root could change).
    pub fn read(dir: &LabDir) -> Result<LabState, LabError> {
        crate::ownership::check_own(dir.root())?;
        let path = dir.state_file();
        let text = std::fs::read_to_string(&path).map_err(|e| {
            LabError::refused(format!(
                "no lab at {} ({}: {e}); start one with 'drover lab up'",
                dir.root().display(),
                path.display()
            ))
        })?;
        serde_json::from_str(&text)
            .map_err(|e| LabError::failed(format!("{}: not a lab state file: {e}", path.display())))
    }

    pub fn write(&self, dir: &LabDir) -> Result<(), LabError> {
        let path = dir.state_file();
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).expect("lab state serializes");
        sys::write_file(&tmp, &text)?;
        std::fs::rename(&tmp, &path).map_err(|e| LabError::failed(format!("{}: {e}", path.display())))
    }

    pub fn supervisor_alive(&self) -> bool {
        self.supervisor.as_ref().is_some_and(sys::Started::running)
    }
}

/// A lab that is up, as the drill and the fault commands use it.
pub struct Lab {
    pub(crate) dir: LabDir,
    pub state: LabState,
}

impl Lab {
    pub fn load(dir: &Path) -> Result<Lab, LabError> {
        let dir = LabDir::new(dir);
        let state = LabState::read(&dir)?;
        Ok(Lab { dir, state })
    }

    pub fn dir(&self) -> &Path {
        self.dir.root()
    }

    pub fn plan(&self) -> &Path {
        &self.state.plan
    }

    /// The base URLs of the lab's `drover serve` daemons (empty without `--daemons`).
    pub fn daemon_urls(&self) -> Vec<String> {
        if !self.state.daemons {
            return Vec::new();
        }
        self.state.regions.iter().map(|r| format!("https://{}:{}", r.address, crate::layout::SERVE_PORT)).collect()
    }

    /// `--store` for the lab's etcd, when it has one (`lab up --ha`); it wants the CA, client
    /// certificate, user and password file too: `LabDir::etcd_store_args` gives them all.
    pub fn etcd_store(&self) -> Option<String> {
        self.state.ha.then(crate::layout::etcd_store_url)
    }

    /// The bearer token the lab's daemons want.
    /// The lab CA's certificate: its daemons' (and, with TLS on, its databases') issuer.
    pub fn ca_cert(&self) -> std::path::PathBuf {
        self.dir.ca_cert()
    }

    pub fn api_token(&self) -> Result<String, LabError> {
        let path = self.dir.api_token();
        std::fs::read_to_string(&path)
            .map(|t| t.trim().to_string())
            .map_err(|e| LabError::failed(format!("{}: {e}", path.display())))
    }
}
