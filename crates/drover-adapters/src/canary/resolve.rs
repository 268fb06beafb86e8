//! How the canary finds the address behind the service's name, as a client does: ask,
//! keep the answer for its TTL, ask again after. One lookup at a time: writes that find
//! the entry expired wait for the same answer.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_core::plan::{CanaryResolve, TrafficSpec};
use drover_core::world::Traffic;

use super::CanaryError;
use crate::dns;

/// Where the answers come from, as a report names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// The name was asked of this DNS server (`system`: the one /etc/resolv.conf names).
    Dns { server: SocketAddr, system: bool },
    /// The plan's traffic record was read through its provider (no DNS was asked).
    Traffic { record: String },
    /// The front door is written as an address: nothing to resolve.
    Address,
}

impl std::fmt::Display for Resolution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resolution::Dns { server, system: true } => {
                write!(f, "resolved with DNS at {server} (the system's resolver), each answer kept for its TTL")
            }
            Resolution::Dns { server, system: false } => {
                write!(f, "resolved with DNS at {server}, each answer kept for its TTL")
            }
            Resolution::Traffic { record } => write!(
                f,
                "followed the traffic record {record} through its provider, not DNS (kept for the record's TTL)"
            ),
            Resolution::Address => write!(f, "an address, not a name: nothing resolved"),
        }
    }
}

enum Source {
    Address(IpAddr),
    Dns(SocketAddr),
    Traffic(Arc<dyn Traffic>, Duration),
}

/// The service name's current address, cached for its TTL.
pub(super) struct Resolver {
    name: String,
    source: Source,
    resolution: Resolution,
    entry: tokio::sync::Mutex<Option<(IpAddr, Instant)>>,
}

impl Resolver {
    /// `traffic` is the plan's traffic provider, needed only for `resolve: traffic`.
    pub(super) fn new(
        name: &str,
        how: CanaryResolve,
        plan_traffic: &TrafficSpec,
        traffic: Option<Arc<dyn Traffic>>,
    ) -> Result<Resolver, CanaryError> {
        let name = name.trim_start_matches('[').trim_end_matches(']').to_owned();
        let (source, resolution) = if let Ok(address) = name.parse::<IpAddr>() {
            (Source::Address(address), Resolution::Address)
        } else {
            match how {
                CanaryResolve::Dns { server: Some(server) } => {
                    (Source::Dns(server), Resolution::Dns { server, system: false })
                }
                CanaryResolve::Dns { server: None } => {
                    let server = dns::system_server()
                        .map_err(|e| CanaryError::Setup(format!("{e} (drill.canary.dns_server)")))?;
                    (Source::Dns(server), Resolution::Dns { server, system: true })
                }
                CanaryResolve::Traffic => {
                    let traffic = traffic.ok_or_else(|| {
                        CanaryError::Setup("resolve: traffic needs the plan's traffic provider; none was given".into())
                    })?;
                    let ttl = match plan_traffic {
                        TrafficSpec::Rfc2136(t) => t.ttl,
                        TrafficSpec::Route53(t) => t.ttl,
                        TrafficSpec::GlobalAccelerator(_) => Duration::ZERO,
                    };
                    let record = plan_traffic.record().to_owned();
                    (Source::Traffic(traffic, ttl), Resolution::Traffic { record })
                }
            }
        };
        Ok(Resolver { name, source, resolution, entry: tokio::sync::Mutex::new(None) })
    }

    pub(super) fn resolution(&self) -> &Resolution {
        &self.resolution
    }

    /// The address a client would connect to now: the cached answer while its TTL lasts,
    /// else a new one. A failed lookup is not cached: the next write asks again.
    pub(super) async fn address(&self) -> Result<IpAddr, String> {
        if let Source::Address(address) = &self.source {
            return Ok(*address);
        }
        let mut entry = self.entry.lock().await;
        if let Some((address, expires)) = *entry
            && Instant::now() < expires
        {
            return Ok(address);
        }
        let (address, ttl) = self.ask().await?;
        *entry = Some((address, Instant::now() + ttl));
        Ok(address)
    }

    async fn ask(&self) -> Result<(IpAddr, Duration), String> {
        match &self.source {
            Source::Address(address) => Ok((*address, Duration::MAX)),
            Source::Dns(server) => {
                let (addresses, ttl) = dns::resolve_as_client(*server, &self.name).await.map_err(|e| e.to_string())?;
                let address =
                    *addresses.first().ok_or_else(|| format!("{} has no address (DNS at {server})", self.name))?;
                Ok((address, ttl))
            }
            Source::Traffic(traffic, ttl) => {
                let state = traffic.current().await.map_err(|e| e.to_string())?;
                // Weighted records read `192.0.2.10 (weight 90)`: the address is the first word.
                let address = state
                    .addresses
                    .iter()
                    .find_map(|a| a.split_whitespace().next()?.parse::<IpAddr>().ok())
                    .ok_or_else(|| format!("the traffic record holds no address ({:?})", state.addresses))?;
                Ok((address, *ttl))
            }
        }
    }
}
