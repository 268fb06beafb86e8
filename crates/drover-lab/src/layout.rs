//! Where everything in the lab is: fixed names and addresses, and the files under the lab dir.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

pub const DEFAULT_DIR: &str = "/tmp/drover-lab";
/// The bridge in the root namespace (the hub, where users and the probe are).
pub const BRIDGE: &str = "drover0";
pub const HUB_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
pub const PREFIX_LEN: u8 = 24;
pub const SUBNET: &str = "10.200.0.0/24";
pub const PG_PORT: u16 = 5432;
pub const APP_PORT: u16 = 8080;
/// Where each region's `drover serve` daemon listens (with `lab up --daemons`).
pub const SERVE_PORT: u16 = 7070;
pub const DNS_PORT: u16 = 53;
/// With `lab up --ha`: one etcd member per region (clients, then peers).
pub const ETCD_CLIENT_PORT: u16 = 2379;
pub const ETCD_PEER_PORT: u16 = 2380;
/// The key prefix the lab's daemons keep the journal, reports and election under.
pub const ETCD_PREFIX: &str = "/drover/lab";
/// The etcd user the lab's daemons (and anyone reading the lab's journal) authenticate
/// as: its role may read and write `ETCD_PREFIX` and nothing else. etcd's `root` user
/// (password in the secrets dir too) is for moving raft leadership.
pub const ETCD_USER: &str = "drover";
pub const PG_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
pub const ZONE: &str = "app.test.";
pub const RECORD: &str = "api.app.test.";
pub const TSIG_KEY_NAME: &str = "drover";
/// The OS user PostgreSQL runs as (it refuses root).
pub const PG_OS_USER: &str = "postgres";
/// The database superuser the lab creates; its password is random per lab.
pub const PG_SUPERUSER: &str = "drover";

pub use drover_core::plan::Role;

/// One region of the lab as it is created.
#[derive(Clone, Copy, Debug)]
pub struct RegionSpec {
    pub name: &'static str,
    pub role: Role,
    pub address: Ipv4Addr,
}

impl RegionSpec {
    pub fn namespace(&self) -> String {
        namespace(self.name)
    }
    /// The hub's end of the region's veth pair (at most 15 characters).
    pub fn veth(&self) -> String {
        format!("drv-{}", self.name)
    }
    /// True for regions that run the service (a database and the app).
    pub fn serves(&self) -> bool {
        self.role != Role::Witness
    }
}

pub const REGIONS: [RegionSpec; 3] = [
    RegionSpec { name: "east", role: Role::Primary, address: Ipv4Addr::new(10, 200, 0, 11) },
    RegionSpec { name: "west", role: Role::Standby, address: Ipv4Addr::new(10, 200, 0, 12) },
    RegionSpec { name: "witness", role: Role::Witness, address: Ipv4Addr::new(10, 200, 0, 13) },
];

/// The lab's etcd members' client addresses, `HOST:PORT` (with `lab up --ha`).
pub fn etcd_members() -> Vec<String> {
    REGIONS.iter().map(etcd_member).collect()
}

/// One region's etcd member's client address.
pub fn etcd_member(region: &RegionSpec) -> String {
    format!("{}:{ETCD_CLIENT_PORT}", region.address)
}

/// `--store` for the lab's etcd: every member, over TLS, and the lab's prefix.
pub fn etcd_store_url() -> String {
    format!("etcds://{}{ETCD_PREFIX}", etcd_members().join(","))
}

pub fn namespace(region: &str) -> String {
    format!("drover-{region}")
}

/// The region named `name`, or a refusal that lists the lab's regions.
pub fn region(name: &str) -> Result<&'static RegionSpec, crate::LabError> {
    REGIONS.iter().find(|r| r.name == name).ok_or_else(|| {
        crate::LabError::refused(format!("unknown region '{name}': the lab's regions are east, west and witness"))
    })
}

/// The region that serves and is not `name` (east <-> west).
pub fn other_service_region(name: &str) -> Option<&'static RegionSpec> {
    REGIONS.iter().find(|r| r.serves() && r.name != name)
}

/// The absolute form of a lab dir as given on the command line.
pub fn absolute(dir: &Path) -> PathBuf {
    if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir().map(|c| c.join(dir)).unwrap_or_else(|_| dir.to_path_buf())
    }
}

/// The files of one lab, all under one directory.
#[derive(Clone, Debug)]
pub struct LabDir {
    root: PathBuf,
}

impl LabDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LabDir { root: root.into() }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// Present in every lab dir: `down` removes only directories that have it.
    pub fn marker(&self) -> PathBuf {
        self.root.join(".drover-lab")
    }
    pub fn state_file(&self) -> PathBuf {
        self.root.join("lab.json")
    }
    pub fn plan(&self) -> PathBuf {
        self.root.join("plan.yaml")
    }
    pub fn supervisor_log(&self) -> PathBuf {
        self.root.join("supervisor.log")
    }
    pub fn control_socket(&self) -> PathBuf {
        self.root.join("supervisor.sock")
    }
    pub fn secrets(&self) -> PathBuf {
        self.root.join("secrets")
    }
    pub fn dsn_file(&self, region: &str) -> PathBuf {
        self.secrets().join(format!("{region}.dsn"))
    }
    /// The lab CA (`crate::pki`) and the certificates it issued, root's only.
    pub fn pki(&self) -> PathBuf {
        self.secrets().join("pki")
    }
    /// The CA certificate every TLS client in the lab trusts.
    pub fn ca_cert(&self) -> PathBuf {
        self.pki().join("ca.pem")
    }
    /// A copy of the CA certificate (public, unlike `pki()`) that the postgres OS user can
    /// read: the lab's DSNs name it as `sslrootcert`, so the standby's streaming and
    /// drover's pg_rewind and pg_basebackup (run as postgres) verify the primary with it.
    pub fn shared_ca_cert(&self) -> PathBuf {
        self.root.join("ca.pem")
    }
    /// A region's PostgreSQL server certificate, key and nothing else, owned by postgres
    /// (outside the data dir: copies of the data dir never carry one region's key into another).
    pub fn pg_tls_dir(&self, region: &str) -> PathBuf {
        self.region_dir(region).join("tls")
    }
    pub fn tsig_key(&self) -> PathBuf {
        self.secrets().join("tsig.key")
    }
    /// Owned by the postgres OS user: the data dir, its socket dir and its region settings.
    pub fn region_dir(&self, region: &str) -> PathBuf {
        self.root.join(region)
    }
    pub fn pgdata(&self, region: &str) -> PathBuf {
        self.region_dir(region).join("pgdata")
    }
    /// Settings that differ per region, included by `postgresql.conf` as `../region.conf`, so
    /// pg_basebackup and pg_rewind (which copy the data dir) never carry them across.
    pub fn region_conf(&self, region: &str) -> PathBuf {
        self.region_dir(region).join("region.conf")
    }
    pub fn pg_socket_dir(&self, region: &str) -> PathBuf {
        self.region_dir(region).join("run")
    }
    /// The password file (libpq's, 0600, the postgres OS user's) a standby made by the lab
    /// reaches its primary with: pg_basebackup reads it, and primary_conninfo names it.
    pub fn primary_passfile(&self, region: &str) -> PathBuf {
        self.region_dir(region).join("primary.pgpass")
    }
    pub fn pg_log(&self, region: &str) -> PathBuf {
        self.region_dir(region).join("postgres.log")
    }
    pub fn app_log(&self, region: &str) -> PathBuf {
        self.root.join(format!("app-{region}.log"))
    }
    /// The operator's bearer token, alone in its file: the drill, the tests and
    /// `--server` commands read the lab's daemons with it.
    pub fn api_token(&self) -> PathBuf {
        self.secrets().join("api-token")
    }
    /// The daemons' `--token-file`: the operator's token and one `peer` token per daemon.
    pub fn api_tokens(&self) -> PathBuf {
        self.secrets().join("api-tokens")
    }
    /// The plan's peer key (`vantages.key_file`): every daemon signs its reports with it.
    pub fn peer_key(&self) -> PathBuf {
        self.secrets().join("peer.key")
    }
    /// A region's daemon: its journal (state dir) and its log.
    pub fn serve_state(&self, region: &str) -> PathBuf {
        self.root.join(format!("serve-{region}"))
    }
    /// A region's daemon's certificate and key from the lab CA, for its API (https) and,
    /// as a client, toward its peers.
    pub fn serve_cert(&self, region: &str) -> crate::pki::Issued {
        crate::pki::Issued {
            cert: self.pki().join(format!("serve-{region}.pem")),
            key: self.pki().join(format!("serve-{region}.key")),
        }
    }
    pub fn serve_log(&self, region: &str) -> PathBuf {
        self.root.join(format!("serve-{region}.log"))
    }
    /// A region's etcd member: its data dir and its log (with `lab up --ha`).
    pub fn etcd_dir(&self, region: &str) -> PathBuf {
        self.root.join(format!("etcd-{region}"))
    }
    pub fn etcd_log(&self, region: &str) -> PathBuf {
        self.root.join(format!("etcd-{region}.log"))
    }
    /// A region's etcd member's certificate and key, issued by the lab CA for its
    /// address (clients and peers alike).
    pub fn etcd_cert(&self, region: &str) -> PathBuf {
        self.pki().join(format!("etcd-{region}.pem"))
    }
    pub fn etcd_key(&self, region: &str) -> PathBuf {
        self.pki().join(format!("etcd-{region}.key"))
    }
    /// The client certificate every drover presents to the lab's etcd: the members ask
    /// for one signed by the lab CA (their `--trusted-ca-file`), before any password.
    pub fn etcd_client_cert(&self) -> PathBuf {
        self.pki().join("etcd-client.pem")
    }
    pub fn etcd_client_key(&self) -> PathBuf {
        self.pki().join("etcd-client.key")
    }
    /// The password of etcd's `ETCD_USER` (random per lab, 0600).
    pub fn etcd_password(&self) -> PathBuf {
        self.secrets().join("etcd-drover.password")
    }
    /// The password of etcd's `root` user (random per lab, 0600).
    pub fn etcd_root_password(&self) -> PathBuf {
        self.secrets().join("etcd-root.password")
    }
    /// The flags that give a drover command the lab's etcd as its store, as `ETCD_USER`.
    pub fn etcd_store_args(&self) -> Vec<String> {
        let path = |p: PathBuf| p.display().to_string();
        vec![
            "--store".into(),
            etcd_store_url(),
            "--etcd-ca".into(),
            path(self.ca_cert()),
            "--etcd-cert".into(),
            path(self.etcd_client_cert()),
            "--etcd-key".into(),
            path(self.etcd_client_key()),
            "--etcd-user".into(),
            ETCD_USER.into(),
            "--etcd-password-file".into(),
            path(self.etcd_password()),
        ]
    }
    /// The lab's etcd as `ETCD_USER`, through `members` (`HOST:PORT`; the lab's own ones
    /// from `etcd_members`, or some of them).
    pub fn etcd_access(&self, members: Vec<String>) -> Result<drover_store::EtcdAccess, crate::LabError> {
        let password = read_secret(&self.etcd_password())?;
        Ok(drover_store::EtcdAccess {
            user: Some(drover_store::EtcdUser { name: ETCD_USER.into(), password }),
            ..self.etcd_tls_access(members)?
        })
    }
    /// The lab's etcd as its `root` user (moving raft leadership needs it).
    pub fn etcd_root_access(&self) -> Result<drover_store::EtcdAccess, crate::LabError> {
        let password = read_secret(&self.etcd_root_password())?;
        Ok(drover_store::EtcdAccess {
            user: Some(drover_store::EtcdUser { name: "root".into(), password }),
            ..self.etcd_tls_access(etcd_members())?
        })
    }
    /// The lab's etcd over TLS without a user (before its auth is enabled).
    pub fn etcd_tls_access(&self, members: Vec<String>) -> Result<drover_store::EtcdAccess, crate::LabError> {
        let identity = (self.etcd_client_cert(), self.etcd_client_key());
        let tls = drover_store::EtcdTls::load(&self.ca_cert(), Some((&identity.0, &identity.1)))
            .map_err(crate::LabError::failed)?;
        Ok(drover_store::EtcdAccess { members, tls: Some(tls), user: None })
    }
    pub fn knot_dir(&self) -> PathBuf {
        self.root.join("knot")
    }
    pub fn knot_conf(&self) -> PathBuf {
        self.knot_dir().join("knot.conf")
    }
    pub fn knot_log(&self) -> PathBuf {
        self.knot_dir().join("knotd.log")
    }
}

fn read_secret(path: &Path) -> Result<drover_core::secret::Secret, crate::LabError> {
    std::fs::read_to_string(path)
        .map(|s| drover_core::secret::Secret::new(s.trim()))
        .map_err(|e| crate::LabError::failed(format!("{}: {e}", path.display())))
}
