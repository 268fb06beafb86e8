//! `lab status`: what each region is doing right now, seen from the hub.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::http::http_get;
use crate::layout::{APP_PORT, LabDir, RECORD, REGIONS, RegionSpec, absolute};
use crate::state::{LabState, Replication};
use crate::{LabError, net, nft, postgres, sys};

const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Serialize)]
pub struct LabStatus {
    pub dir: PathBuf,
    pub plan: PathBuf,
    pub replication: Replication,
    pub supervisor: Option<u32>,
    pub supervisor_running: bool,
    pub regions: Vec<RegionStatus>,
    pub dns: DnsStatus,
}

#[derive(Debug, Serialize)]
pub struct RegionStatus {
    pub name: String,
    pub address: String,
    pub namespace: String,
    pub namespace_present: bool,
    /// None for the witness, which runs no database.
    pub postgres: Option<PostgresStatus>,
    pub app: Option<AppStatus>,
    /// Faults in force: `blackout`, `partition from west`, `killed`, `paused`.
    pub faults: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct PostgresStatus {
    /// The postmaster's pid, when it runs.
    pub pid: Option<u32>,
    /// `primary` or `standby` as the database itself says (SQL); None when it did not answer.
    pub role: Option<String>,
    /// A standby: its WAL receiver's status (`streaming`). A primary: its standbys
    /// (`west streaming sync`).
    pub replication: Vec<String>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct AppStatus {
    /// HTTP status of GET /healthz; None when it did not answer.
    pub healthz: Option<u16>,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct DnsStatus {
    pub server: SocketAddr,
    pub name: String,
    pub addresses: Vec<String>,
    pub ttl_seconds: Option<u64>,
    pub error: Option<String>,
}

pub async fn status(dir: &Path) -> Result<LabStatus, LabError> {
    let lab = LabDir::new(absolute(dir));
    let state = LabState::read(&lab)?;
    let [east, west, witness] = &REGIONS;
    let (east, west, witness) =
        tokio::join!(region_status(&lab, east), region_status(&lab, west), region_status(&lab, witness));
    let regions = vec![east, west, witness];
    let dns = match drover_adapters::dns::resolve(state.hub.dns, RECORD).await {
        Ok((addresses, ttl)) => DnsStatus {
            server: state.hub.dns,
            name: RECORD.into(),
            addresses: addresses.iter().map(ToString::to_string).collect(),
            ttl_seconds: Some(ttl.as_secs()),
            error: None,
        },
        Err(e) => DnsStatus {
            server: state.hub.dns,
            name: RECORD.into(),
            addresses: Vec::new(),
            ttl_seconds: None,
            error: Some(e.to_string()),
        },
    };
    Ok(LabStatus {
        dir: lab.root().to_path_buf(),
        plan: state.plan.clone(),
        replication: state.replication,
        supervisor: state.supervisor.as_ref().map(|s| s.pid),
        supervisor_running: state.supervisor_alive(),
        regions,
        dns,
    })
}

async fn region_status(lab: &LabDir, region: &RegionSpec) -> RegionStatus {
    let ns = region.namespace();
    let present = net::namespace_exists(&ns);
    let mut faults: Vec<String> = if present {
        nft::tables(&ns).map(|t| t.iter().map(|t| nft::describe(t)).collect()).unwrap_or_default()
    } else {
        Vec::new()
    };
    // A partition is held in one of the two namespaces; show it on both sides.
    for other in REGIONS.iter().filter(|r| r.name != region.name && net::namespace_exists(&r.namespace())) {
        if nft::tables(&other.namespace()).is_ok_and(|t| t.contains(&nft::partition_table(region.name))) {
            faults.push(format!("partition from {}", other.name));
        }
    }
    let (pg, app) = if region.serves() {
        let pid = sys::postmaster(&lab.pgdata(region.name));
        match pid {
            None => faults.push("killed".into()),
            Some(p) if sys::process_state(p) == Some('T') => faults.push("paused".into()),
            Some(_) => {}
        }
        let (pg, app) = tokio::join!(postgres_status(lab, region.name, pid), app_status(region));
        (Some(pg), Some(app))
    } else {
        (None, None)
    };
    RegionStatus {
        name: region.name.into(),
        address: region.address.to_string(),
        namespace: ns,
        namespace_present: present,
        postgres: pg,
        app,
        faults,
    }
}

async fn postgres_status(lab: &LabDir, region: &str, pid: Option<u32>) -> PostgresStatus {
    let mut status = PostgresStatus { pid, role: None, replication: Vec::new(), error: None };
    if pid.is_none() {
        status.error = Some("not running".into());
        return status;
    }
    let dsn = match std::fs::read_to_string(lab.dsn_file(region)) {
        Ok(d) => d.trim().to_string(),
        Err(e) => {
            status.error = Some(format!("{}: {e}", lab.dsn_file(region).display()));
            return status;
        }
    };
    let answer = tokio::time::timeout(PROBE_TIMEOUT, async {
        let client = postgres::connect(&dsn, PROBE_TIMEOUT).await?;
        let in_recovery: bool =
            client.query_one("SELECT pg_is_in_recovery()", &[]).await.map_err(|e| postgres::describe(&e))?.get(0);
        let replication = if in_recovery {
            client
                .query("SELECT status FROM pg_stat_wal_receiver", &[])
                .await
                .map_err(|e| postgres::describe(&e))?
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect()
        } else {
            client
                .query("SELECT application_name, state, sync_state FROM pg_stat_replication", &[])
                .await
                .map_err(|e| postgres::describe(&e))?
                .iter()
                .map(|r| format!("{} {} {}", r.get::<_, String>(0), r.get::<_, String>(1), r.get::<_, String>(2)))
                .collect()
        };
        Ok::<_, String>((in_recovery, replication))
    })
    .await;
    match answer {
        Ok(Ok((in_recovery, replication))) => {
            status.role = Some(if in_recovery { "standby" } else { "primary" }.into());
            status.replication = replication;
        }
        Ok(Err(e)) => status.error = Some(e),
        Err(_) => status.error = Some(format!("no answer within {} ms", PROBE_TIMEOUT.as_millis())),
    }
    status
}

async fn app_status(region: &RegionSpec) -> AppStatus {
    match http_get(SocketAddr::new(region.address.into(), APP_PORT), "/healthz", PROBE_TIMEOUT).await {
        Ok((code, body)) => AppStatus { healthz: Some(code), detail: body.trim().to_string() },
        Err(e) => AppStatus { healthz: None, detail: e },
    }
}

impl LabStatus {
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "lab {} ({} replication), plan {}\nsupervisor: {}\n\n",
            self.dir.display(),
            self.replication.as_str(),
            self.plan.display(),
            match (self.supervisor, self.supervisor_running) {
                (Some(pid), true) => format!("running (pid {pid})"),
                _ => "NOT RUNNING — 'drover lab down' then 'drover lab up'".into(),
            }
        );
        out.push_str(&format!(
            "{:<8} {:<12} {:<6} {:<32} {:<13} {}\n",
            "REGION", "ADDRESS", "NETNS", "POSTGRES", "APP", "FAULTS"
        ));
        for r in &self.regions {
            let pg = match &r.postgres {
                None => "-".to_string(),
                Some(p) => match (&p.role, &p.error) {
                    (Some(role), _) if p.replication.is_empty() => role.clone(),
                    (Some(role), _) => format!("{role} ({})", p.replication.join(", ")),
                    (None, _) if p.pid.is_none() => "not running".into(),
                    (None, _) => "unreachable".into(),
                },
            };
            let app = match &r.app {
                None => "-".to_string(),
                Some(a) => match a.healthz {
                    Some(200) => format!("200 {}", a.detail),
                    Some(code) => code.to_string(),
                    None => "unreachable".into(),
                },
            };
            let faults = if r.faults.is_empty() { "-".to_string() } else { r.faults.join(", ") };
            out.push_str(&format!(
                "{:<8} {:<12} {:<6} {:<32} {:<13} {}\n",
                r.name,
                r.address,
                if r.namespace_present { "yes" } else { "NO" },
                pg,
                app,
                faults
            ));
        }
        for r in &self.regions {
            let pg_error = r.postgres.as_ref().and_then(|p| p.error.as_ref());
            let app_error = r.app.as_ref().filter(|a| a.healthz != Some(200)).map(|a| &a.detail);
            for (what, detail) in [("postgres", pg_error), ("app", app_error)] {
                if let Some(detail) = detail {
                    out.push_str(&format!("  {} {what}: {detail}\n", r.name));
                }
            }
        }
        out.push_str(&format!(
            "\ndns {} @ {}: {}\n",
            self.dns.name,
            self.dns.server,
            match &self.dns.error {
                Some(e) => format!("error: {e}"),
                None => format!("{} (ttl {}s)", self.dns.addresses.join(", "), self.dns.ttl_seconds.unwrap_or(0)),
            }
        ));
        out
    }
}
