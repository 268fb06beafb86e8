//! Plain DNS against one server, asked directly (no cache, no recursion): the
//! traffic adapter reads the record and its epoch with it, the probe resolves with it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use drover_core::error::ProviderError;
use hickory_net::NetError;
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::udp::UdpClientStream;
use hickory_net::xfer::{DnsRequestSender, FirstAnswer};
use hickory_proto::op::{DnsRequest, DnsRequestOptions, DnsResponse, Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// How long one exchange may take, UDP retransmissions included.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);

/// Sends one message to `server` over UDP and returns the server's answer, whatever its rcode.
/// The message goes out byte for byte as given (a TSIG signature stays valid).
pub(crate) async fn exchange(server: SocketAddr, message: Message) -> Result<DnsResponse, ProviderError> {
    let mut options = DnsRequestOptions::default();
    options.use_edns = message.edns.is_some();
    options.recursion_desired = false;
    let mut stream =
        UdpClientStream::builder(server, TokioRuntimeProvider::default()).with_timeout(Some(TIMEOUT)).build();
    stream.send_message(DnsRequest::new(message, options)).first_answer().await.map_err(|e| network_error(server, e))
}

/// The exchange's failure in a user's words; hickory's error is kept as the source.
fn network_error(server: SocketAddr, error: NetError) -> ProviderError {
    let message = match &error {
        NetError::Timeout => format!(
            "dns {server}: no answer within {}s — is the server running and reachable from here?",
            TIMEOUT.as_secs()
        ),
        NetError::Io(e) => format!("dns {server}: {e} — is the server running and reachable from here?"),
        other => format!("dns {server}: exchange failed: {other}"),
    };
    ProviderError::transient(message).with_source(error)
}

/// The records a server holds for one name and type.
#[derive(Clone, Debug, Default)]
pub struct Answer {
    /// Only records of the asked name and type (an authoritative server does not chase CNAMEs).
    pub records: Vec<Record>,
    /// How long "no such records" may be cached (from the SOA in the authority section).
    pub negative_ttl: Option<u32>,
}

/// Asks `server` for `name`/`rtype` without recursion. NXDOMAIN and NODATA are an empty answer.
pub async fn lookup(server: SocketAddr, name: &Name, rtype: RecordType) -> Result<Answer, ProviderError> {
    let mut options = DnsRequestOptions::default();
    options.recursion_desired = false;
    let request = DnsRequest::from_query(Query::query(name.clone(), rtype), options);
    let (message, _) = request.into_parts();
    let response = exchange(server, message).await?;
    answer_of(server, name, rtype, &response)
}

/// What drover takes from `response`, a server's answer (any bytes it sent, parsed) to
/// `name`/`rtype`: the records of that name and type, or the failure its rcode means.
/// Apart from the exchange, so the fuzz target (`fuzz/`) feeds it arbitrary answers.
pub fn answer_of(
    server: SocketAddr,
    name: &Name,
    rtype: RecordType,
    response: &DnsResponse,
) -> Result<Answer, ProviderError> {
    match response.response_code {
        ResponseCode::NoError | ResponseCode::NXDomain => Ok(Answer {
            records: response.answers.iter().filter(|r| r.record_type() == rtype && r.name == *name).cloned().collect(),
            negative_ttl: response.negative_ttl(),
        }),
        ResponseCode::ServFail => Err(ProviderError::transient(format!(
            "dns {server}: {name} {rtype}: server failure (SERVFAIL) — check the server's log"
        ))),
        ResponseCode::Refused => Err(ProviderError::permanent(format!(
            "dns {server}: {name} {rtype}: query refused (REFUSED) — does this server serve the zone of {name}, and does its ACL allow queries from this host?"
        ))),
        code => Err(ProviderError::permanent(format!("dns {server}: {name} {rtype}: the server answered {code}"))),
    }
}

/// Parses a fully qualified or relative name (taken as fully qualified).
pub(crate) fn fqdn(name: &str) -> Result<Name, ProviderError> {
    let mut parsed = Name::from_ascii(name).map_err(|e| {
        ProviderError::permanent(format!("dns name '{name}' is not a valid domain name: {e}")).with_source(e)
    })?;
    parsed.set_fqdn(true);
    Ok(parsed)
}

/// The addresses (A and AAAA) among `records`.
pub fn addresses(records: &[Record]) -> Vec<IpAddr> {
    records
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
            _ => None,
        })
        .collect()
}

/// Resolves `name`'s A records by asking `server` directly, with the TTL a cache should honour
/// (the lowest record TTL; the zone's negative TTL when there is no address).
pub async fn resolve(server: SocketAddr, name: &str) -> Result<(Vec<IpAddr>, Duration), ProviderError> {
    let answer = lookup(server, &fqdn(name)?, RecordType::A).await?;
    Ok((addresses(&answer.records), answer.cache_for()))
}

impl Answer {
    /// How long a cache should keep it: the lowest record TTL, or the zone's negative TTL
    /// when there is no record.
    pub fn cache_for(&self) -> Duration {
        let ttl = match self.records.iter().map(|r| r.ttl).min() {
            Some(ttl) => ttl,
            None => self.negative_ttl.unwrap_or(0),
        };
        Duration::from_secs(u64::from(ttl))
    }
}

/// Resolves `name`'s A records as a client's stub resolver does: recursion desired (the
/// server may be a recursive resolver), CNAME chains followed by taking the addresses the
/// answer ends on. Returns them with the TTL a cache should honour: the lowest TTL of the
/// whole chain (the zone's negative TTL when there is no address).
pub async fn resolve_as_client(server: SocketAddr, name: &str) -> Result<(Vec<IpAddr>, Duration), ProviderError> {
    let asked = fqdn(name)?;
    let mut options = DnsRequestOptions::default();
    options.recursion_desired = true;
    let request = DnsRequest::from_query(Query::query(asked.clone(), RecordType::A), options);
    let (message, _) = request.into_parts();
    let response = exchange(server, message).await?;
    match response.response_code {
        ResponseCode::NoError | ResponseCode::NXDomain => {}
        _ => answer_of(server, &asked, RecordType::A, &response).map(|_| ())?,
    }
    let chain: Vec<&Record> =
        response.answers.iter().filter(|r| matches!(r.record_type(), RecordType::A | RecordType::CNAME)).collect();
    let found = addresses(&chain.iter().map(|r| (*r).clone()).collect::<Vec<_>>());
    let ttl = match chain.iter().map(|r| r.ttl).min() {
        Some(ttl) if !found.is_empty() => ttl,
        _ => response.negative_ttl().unwrap_or(0),
    };
    Ok((found, Duration::from_secs(u64::from(ttl))))
}

/// The first name server in `/etc/resolv.conf`: where the system's stub resolver asks.
pub fn system_server() -> Result<SocketAddr, ProviderError> {
    let path = "/etc/resolv.conf";
    let text = std::fs::read_to_string(path).map_err(|e| {
        ProviderError::permanent(format!("{path} cannot be read ({e}); name a DNS server to resolve with"))
            .with_source(e)
    })?;
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().split('%').next()?.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .next()
        .ok_or_else(|| {
            ProviderError::permanent(format!("{path} names no nameserver; name a DNS server to resolve with"))
        })
}
