//! Real faults in a region, and lifting them: nftables for the network, signals for the
//! database's processes.

use std::fmt;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::layout::{self, PG_PORT, REGIONS};
use crate::state::Lab;
use crate::{LabError, nft, supervisor, sys};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// Drop all traffic in and out of the region (loopback excepted).
    Blackout,
    /// Drop traffic between the region and one other region, both directions.
    Partition,
    /// SIGKILL the region's PostgreSQL postmaster.
    Kill,
    /// SIGSTOP the region's PostgreSQL processes.
    Pause,
    /// Drop a share of the packets in and out of the region at random.
    Loss,
}

impl FaultKind {
    pub const ALL: [FaultKind; 5] =
        [FaultKind::Blackout, FaultKind::Partition, FaultKind::Kill, FaultKind::Pause, FaultKind::Loss];

    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Blackout => "blackout",
            FaultKind::Partition => "partition",
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Loss => "loss",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    pub region: String,
    /// For a partition: the region cut off from `region`.
    pub from: Option<String>,
    /// For loss: the share of packets dropped, 1 to 100.
    pub percent: u8,
}

/// The share of packets a `loss` fault drops unless told otherwise.
pub const DEFAULT_LOSS_PERCENT: u8 = 5;

impl Fault {
    /// Validates a fault as a person writes it: `blackout east`, `partition east --from west`.
    pub fn parse(kind: &str, region: &str, from: Option<&str>) -> Result<Fault, String> {
        let kind = FaultKind::ALL.into_iter().find(|k| k.as_str() == kind).ok_or_else(|| {
            format!("unknown fault '{kind}': the lab injects blackout, partition, kill, pause and loss")
        })?;
        let spec = layout::region(region).map_err(|e| e.to_string())?;
        if matches!(kind, FaultKind::Kill | FaultKind::Pause) && !spec.serves() {
            return Err(format!(
                "{} {region}: the witness runs no database; kill and pause apply to east and west",
                kind.as_str()
            ));
        }
        let from = match (kind, from) {
            (FaultKind::Partition, Some(other)) => {
                layout::region(other).map_err(|e| e.to_string())?;
                if other == region {
                    return Err(format!(
                        "partition {region} --from {other}: a region cannot be partitioned from itself"
                    ));
                }
                Some(other.to_string())
            }
            (FaultKind::Partition, None) => match spec.serves() {
                true => layout::other_service_region(region).map(|r| r.name.to_string()),
                false => return Err(format!("partition {region}: say which region to cut it from, e.g. --from east")),
            },
            (_, Some(_)) => return Err(format!("--from applies to partition only, not {}", kind.as_str())),
            (_, None) => None,
        };
        Ok(Fault { kind, region: region.to_string(), from, percent: DEFAULT_LOSS_PERCENT })
    }

    /// Sets the share of packets a loss fault drops.
    pub fn with_percent(mut self, percent: u8) -> Result<Fault, String> {
        if self.kind != FaultKind::Loss {
            return Err(format!("--percent applies to loss only, not {}", self.kind.as_str()));
        }
        if !(1..=100).contains(&percent) {
            return Err(format!("--percent {percent}: give a share from 1 to 100"));
        }
        self.percent = percent;
        Ok(self)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind.as_str(), self.region)?;
        if let Some(from) = &self.from {
            write!(f, " (from {from})")?;
        }
        if self.kind == FaultKind::Loss {
            write!(f, " ({}%)", self.percent)?;
        }
        Ok(())
    }
}

/// Hang guard for a healed database to accept connections again (crash recovery is usually < 1 s).
const RESTART_GUARD: Duration = Duration::from_secs(60);

impl Lab {
    pub fn fault(&self, fault: &Fault) -> Result<(), LabError> {
        let spec = layout::region(&fault.region)?;
        let ns = spec.namespace();
        match fault.kind {
            FaultKind::Blackout => nft::apply(&ns, &nft::blackout_ruleset()),
            FaultKind::Loss => nft::apply(&ns, &nft::loss_ruleset(fault.percent)),
            FaultKind::Partition => {
                let peer = layout::region(fault.from.as_deref().unwrap_or_default())?;
                nft::apply(&ns, &nft::partition_ruleset(peer.name, peer.address))
            }
            FaultKind::Kill => {
                let pid = self.postmaster(&fault.region)?;
                sys::signal(pid, Signal::SIGKILL)
                    .map_err(|e| LabError::failed(format!("{} database: SIGKILL {pid}: {e}", fault.region)))
            }
            FaultKind::Pause => {
                let pid = self.postmaster(&fault.region)?;
                // The postmaster first, so it forks no new backend; then every backend, so sessions
                // that are already open hang too, as on a frozen host.
                for p in std::iter::once(pid).chain(sys::children(pid)) {
                    let _ = sys::signal(p, Signal::SIGSTOP);
                }
                Ok(())
            }
        }
    }

    /// Lifts every fault from `region`: its nft tables, partitions other regions hold against
    /// it, a pause; restarts its database if it was killed. Says what it did.
    pub fn heal(&self, region: &str) -> Result<String, LabError> {
        let spec = layout::region(region)?;
        let mut done = Vec::new();
        for table in nft::tables(&spec.namespace())? {
            nft::delete(&spec.namespace(), &table)?;
            done.push(format!("removed {}", nft::describe(&table)));
        }
        for other in REGIONS.iter().filter(|r| r.name != region) {
            let table = nft::partition_table(region);
            if nft::tables(&other.namespace())?.contains(&table) {
                nft::delete(&other.namespace(), &table)?;
                done.push(format!("removed {}'s partition from {region}", other.name));
            }
        }
        if spec.serves() {
            match sys::postmaster(&self.dir.pgdata(region)) {
                Some(pid) => {
                    let stopped: Vec<u32> = std::iter::once(pid)
                        .chain(sys::children(pid))
                        .filter(|p| sys::process_state(*p) == Some('T'))
                        .collect();
                    for p in &stopped {
                        let _ = sys::signal(*p, Signal::SIGCONT);
                    }
                    if !stopped.is_empty() {
                        done.push("resumed postgres".into());
                    }
                }
                None => {
                    let pid = self.restart_database(region)?;
                    done.push(format!("restarted postgres (pid {pid})"));
                }
            }
        }
        Ok(if done.is_empty() {
            format!("{region}: nothing to heal")
        } else {
            format!("{region}: {}", done.join(", "))
        })
    }

    fn postmaster(&self, region: &str) -> Result<u32, LabError> {
        sys::postmaster(&self.dir.pgdata(region)).ok_or_else(|| {
            LabError::refused(format!("{region} database is not running; 'drover lab heal {region}' starts it again"))
        })
    }

    /// Has the supervisor start the region's database from its data dir as it is, and waits
    /// until it accepts connections. A postmaster killed a moment ago may leave backends that
    /// still hold its shared memory, so a start that dies at once is tried again.
    fn restart_database(&self, region: &str) -> Result<u32, LabError> {
        let spec = layout::region(region)?;
        let pgdata = self.dir.pgdata(region);
        let pg_isready = format!("{}/pg_isready", layout::PG_BIN_DIR);
        let (address, port) = (spec.address.to_string(), PG_PORT.to_string());
        let started = Instant::now();
        let mut last_request: Option<Instant> = None;
        loop {
            if sys::postmaster(&pgdata).is_none() && last_request.is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
                supervisor::request(&self.dir, &format!("start postgres-{region}"))?;
                last_request = Some(Instant::now());
            }
            if sys::run(&pg_isready, &["-q", "-h", &address, "-p", &port, "-t", "1"]).is_ok()
                && let Some(pid) = sys::postmaster(&pgdata)
            {
                return Ok(pid);
            }
            if started.elapsed() > RESTART_GUARD {
                return Err(LabError::failed(format!(
                    "{region} database did not accept connections within {}s after restarting; its log ends:\n{}",
                    RESTART_GUARD.as_secs(),
                    sys::tail(&self.dir.pg_log(region), 15)
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_defaults_to_the_other_service_region() {
        let f = Fault::parse("partition", "east", None).unwrap();
        assert_eq!(f.from.as_deref(), Some("west"));
        assert_eq!(Fault::parse("partition", "west", None).unwrap().from.as_deref(), Some("east"));
        assert_eq!(f.to_string(), "partition:east (from west)");
    }

    #[test]
    fn refuses_what_the_lab_cannot_do() {
        assert!(Fault::parse("flood", "east", None).unwrap_err().contains("blackout, partition, kill, pause and loss"));
        assert!(Fault::parse("blackout", "north", None).unwrap_err().contains("east, west and witness"));
        assert!(Fault::parse("kill", "witness", None).unwrap_err().contains("runs no database"));
        assert!(Fault::parse("partition", "witness", None).unwrap_err().contains("--from"));
        assert!(Fault::parse("partition", "east", Some("east")).is_err());
        assert!(Fault::parse("blackout", "east", Some("west")).is_err());
        assert_eq!(Fault::parse("blackout", "witness", None).unwrap().to_string(), "blackout:witness");
        assert!(Fault::parse("blackout", "east", None).unwrap().with_percent(5).unwrap_err().contains("loss only"));
        assert!(Fault::parse("loss", "east", None).unwrap().with_percent(0).unwrap_err().contains("1 to 100"));
    }

    #[test]
    fn loss_drops_five_percent_unless_told() {
        let f = Fault::parse("loss", "east", None).unwrap();
        assert_eq!(f.to_string(), "loss:east (5%)");
        assert_eq!(f.with_percent(20).unwrap().to_string(), "loss:east (20%)");
    }
}
