//! Traffic switching by RFC 2136 dynamic DNS UPDATE, signed with TSIG.
//!
//! The epoch lives in the zone beside the record, as `_drover-epoch.<record> TXT "<epoch>"`
//! (absent means 0). A switch is one UPDATE whose prerequisite is that TXT as observed and
//! whose updates replace the record's addresses and the TXT together: compare-and-swap on
//! DNS, so a stale run can never overwrite a newer switch.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use drover_core::error::ProviderError;
use drover_core::plan::{Rfc2136Spec, TsigAlgorithm};
use drover_core::run::Epoch;
use drover_core::secret::Secret;
use drover_core::world::{Traffic, TrafficState};
use hickory_proto::op::{DnsResponse, Message, OpCode, Query, ResponseCode, UpdateMessage};
use hickory_proto::rr::rdata::tsig::{TsigAlgorithm as HickoryTsigAlgorithm, TsigError};
use hickory_proto::rr::rdata::{A, AAAA, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, TSigner};

use crate::dns;

/// Prefix of the TXT record that holds the epoch, beside the switched record.
pub const EPOCH_LABEL: &str = "_drover-epoch";

/// Seconds of clock difference the server may accept between us and it (RFC 8945 suggests 300).
const TSIG_FUDGE: u16 = 300;

/// Points a DNS name at a region's target through the zone's primary server.
pub struct Rfc2136Traffic {
    server: SocketAddr,
    zone: String,
    record: String,
    ttl: u32,
    targets: BTreeMap<String, IpAddr>,
    key_name: String,
    algorithm: TsigAlgorithm,
    /// The base64 TSIG secret, as Knot and BIND write keys.
    key: Secret,
}

/// What the epoch TXT must hold for an UPDATE to apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpochRecord {
    Absent,
    Holds(Epoch),
}

/// The epoch the TXT records of `answer` (to `name`, the epoch record) hold. Any answer a
/// server sends is read here, so the fuzz target (`fuzz/`) feeds it arbitrary ones.
pub fn epoch_of(name: &Name, answer: &dns::Answer) -> Result<EpochRecord, ProviderError> {
    let values: Vec<String> = answer
        .records
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(txt) => Some(txt.txt_data.iter().map(|s| String::from_utf8_lossy(s)).collect()),
            _ => None,
        })
        .collect();
    match values.as_slice() {
        [] => Ok(EpochRecord::Absent),
        [value] => value.trim().parse().map(EpochRecord::Holds).map_err(|e| {
            ProviderError::permanent(format!(
                "dns {name}: the epoch record holds \"{value}\", not an epoch number — it was not written by drover; correct it or delete it"
            ))
            .with_source(e)
        }),
        _ => Err(ProviderError::permanent(format!(
            "dns {name}: the epoch record holds {} values, drover writes one — delete the extra TXT records",
            values.len()
        ))),
    }
}

impl Rfc2136Traffic {
    pub fn new(spec: &Rfc2136Spec, key: Secret) -> Self {
        Rfc2136Traffic {
            server: spec.server,
            zone: spec.zone.clone(),
            record: spec.record.clone(),
            ttl: u32::try_from(spec.ttl.as_secs()).unwrap_or(u32::MAX),
            targets: spec.targets.clone(),
            key_name: spec.tsig.name.clone(),
            algorithm: spec.tsig.algorithm,
            key,
        }
    }

    fn record_name(&self) -> Result<Name, ProviderError> {
        dns::fqdn(&self.record)
    }

    fn epoch_name(&self) -> Result<Name, ProviderError> {
        dns::fqdn(&format!("{EPOCH_LABEL}.{}", self.record))
    }

    /// Reads the epoch TXT: absent, or the epoch it holds.
    async fn epoch_record(&self) -> Result<EpochRecord, ProviderError> {
        let name = self.epoch_name()?;
        epoch_of(&name, &dns::lookup(self.server, &name, RecordType::TXT).await?)
    }

    fn signer(&self) -> Result<TSigner, ProviderError> {
        // The decoding error is not kept as the source: it points into the secret.
        let key = data_encoding::BASE64.decode(self.key.expose().trim().as_bytes()).map_err(|_| {
            ProviderError::permanent(format!(
                "dns {}: the TSIG secret for key '{}' is not valid base64 — write traffic.tsig's secret as the server's key file has it (e.g. `keymgr -t {} {}`)",
                self.server,
                self.key_name,
                self.key_name,
                self.algorithm.as_str()
            ))
        })?;
        let algorithm = match self.algorithm {
            TsigAlgorithm::HmacSha256 => HickoryTsigAlgorithm::HmacSha256,
            TsigAlgorithm::HmacSha384 => HickoryTsigAlgorithm::HmacSha384,
            TsigAlgorithm::HmacSha512 => HickoryTsigAlgorithm::HmacSha512,
        };
        TSigner::new(key, algorithm, dns::fqdn(&self.key_name)?, TSIG_FUDGE).map_err(|e| {
            ProviderError::permanent(format!("dns {}: cannot sign with TSIG key '{}': {e}", self.server, self.key_name))
                .with_source(e)
        })
    }

    /// The one UPDATE that moves the record to `target` and the epoch TXT to `new_epoch`,
    /// only if the TXT is still `expected`.
    fn update_message(
        &self,
        target: IpAddr,
        expected: EpochRecord,
        new_epoch: Epoch,
    ) -> Result<Message, ProviderError> {
        let zone = dns::fqdn(&self.zone)?;
        let record = self.record_name()?;
        let epoch = self.epoch_name()?;

        let mut message = Message::query();
        message.metadata.op_code = OpCode::Update;
        message.metadata.recursion_desired = false;
        let mut zone_section = Query::query(zone, RecordType::SOA);
        zone_section.set_query_class(DNSClass::IN);
        message.add_zone(zone_section);

        message.add_pre_requisite(match expected {
            // RFC 2136 2.4.2: exactly this RRset exists (value dependent).
            EpochRecord::Holds(e) => Record::from_rdata(epoch.clone(), 0, epoch_txt(e)),
            // RFC 2136 2.4.3: the RRset does not exist.
            EpochRecord::Absent => class(Record::update0(epoch.clone(), 0, RecordType::TXT), DNSClass::NONE),
        });

        // RFC 2136 2.5.2: delete the whole RRset (class ANY), then add the new one.
        message.add_update(class(Record::update0(record.clone(), 0, RecordType::A), DNSClass::ANY));
        message.add_update(class(Record::update0(record.clone(), 0, RecordType::AAAA), DNSClass::ANY));
        let address = match target {
            IpAddr::V4(v4) => RData::A(A(v4)),
            IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
        };
        message.add_update(Record::from_rdata(record, self.ttl, address));
        message.add_update(class(Record::update0(epoch.clone(), 0, RecordType::TXT), DNSClass::ANY));
        message.add_update(Record::from_rdata(epoch, self.ttl, epoch_txt(new_epoch)));
        Ok(message)
    }

    /// Signs and sends an UPDATE; returns the server's rcode once the answer's TSIG is verified.
    async fn send_update(&self, mut message: Message) -> Result<ResponseCode, ProviderError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let verifier = message.finalize(&self.signer()?, now).map_err(|e| {
            ProviderError::permanent(format!(
                "dns {}: cannot sign the update with key '{}': {e}",
                self.server, self.key_name
            ))
            .with_source(e)
        })?;
        let response = dns::exchange(self.server, message).await?;
        self.check_tsig(&response)?;
        if let Some(mut verifier) = verifier {
            // An answer not signed with our key is not the server's word: treat it as an auth failure.
            verifier.verify(response.as_buffer()).map_err(|e| self.auth_failed().with_source(e))?;
        }
        Ok(response.response_code)
    }

    /// Knot refuses a bad signature with NOTAUTH and an unsigned TSIG carrying BADSIG/BADKEY/BADTIME.
    fn check_tsig(&self, response: &DnsResponse) -> Result<(), ProviderError> {
        match response.signature().and_then(|s| s.data.error) {
            Some(TsigError::BadTime) => Err(ProviderError::permanent(format!(
                "dns {}: TSIG time check failed for key '{}' — this machine's clock and the server's differ by more than {TSIG_FUDGE}s; sync them (NTP)",
                self.server, self.key_name
            ))),
            // Knot answers BADKEY for an unknown key name or algorithm, and for a key the zone's ACL does not allow.
            Some(TsigError::BadKey) => Err(ProviderError::permanent(format!(
                "dns {}: TSIG authentication failed for key '{}' (BADKEY) — the server has no {} key of that name, or zone {}'s update ACL does not allow it; check traffic.tsig name and algorithm, and the server's acl",
                self.server,
                self.key_name,
                self.algorithm.as_str(),
                self.zone
            ))),
            Some(_) => Err(self.auth_failed()),
            None if response.response_code == ResponseCode::NotAuth && response.signature().is_none() => {
                Err(self.auth_failed())
            }
            None => Ok(()),
        }
    }

    fn auth_failed(&self) -> ProviderError {
        ProviderError::permanent(format!(
            "dns {}: TSIG authentication failed for key '{}' — check traffic.tsig secret and algorithm match the server's key",
            self.server, self.key_name
        ))
    }

    fn stale(&self, observed_epoch: Epoch) -> ProviderError {
        ProviderError::stale(format!(
            "dns {}: switch refused: the epoch record no longer holds {observed_epoch} (a newer run has switched traffic); abort this run",
            self.record
        ))
    }
}

fn epoch_txt(epoch: Epoch) -> RData {
    RData::TXT(TXT::new(vec![epoch.to_string()]))
}

fn class(mut record: Record, class: DNSClass) -> Record {
    record.dns_class = class;
    record
}

#[async_trait]
impl Traffic for Rfc2136Traffic {
    async fn current(&self) -> Result<TrafficState, ProviderError> {
        let record = self.record_name()?;
        let (a, aaaa, epoch) = tokio::try_join!(
            dns::lookup(self.server, &record, RecordType::A),
            dns::lookup(self.server, &record, RecordType::AAAA),
            self.epoch_record(),
        )?;
        let mut addresses = dns::addresses(&a.records);
        addresses.extend(dns::addresses(&aaaa.records));
        // A region only when every address is its target: a half-moved record points nowhere.
        let region = self
            .targets
            .iter()
            .find(|(_, target)| !addresses.is_empty() && addresses.iter().all(|a| a == *target))
            .map(|(region, _)| region.clone());
        let epoch = match epoch {
            EpochRecord::Absent => 0,
            EpochRecord::Holds(e) => e,
        };
        Ok(TrafficState { region, addresses: addresses.iter().map(ToString::to_string).collect(), epoch })
    }

    /// Safe to repeat: when the server refuses because the zone already holds exactly this
    /// switch (a retransmitted or repeated call), it succeeds.
    async fn switch(&self, region: &str, observed_epoch: Epoch, new_epoch: Epoch) -> Result<(), ProviderError> {
        let target = *self.targets.get(region).ok_or_else(|| {
            ProviderError::permanent(format!(
                "dns {}: no target for region '{region}' in traffic.targets — add it to the plan",
                self.record
            ))
        })?;
        // Epoch 0 is usually "no TXT yet", but a hand-seeded "0" must match as a value.
        let expected = match observed_epoch {
            0 => match self.epoch_record().await? {
                EpochRecord::Holds(0) => EpochRecord::Holds(0),
                _ => EpochRecord::Absent,
            },
            e => EpochRecord::Holds(e),
        };
        let message = self.update_message(target, expected, new_epoch)?;
        match self.send_update(message).await? {
            ResponseCode::NoError => Ok(()),
            ResponseCode::NXRRSet | ResponseCode::YXRRSet => {
                let now = self.current().await?;
                if now.region.as_deref() == Some(region) && now.epoch == new_epoch {
                    return Ok(());
                }
                Err(self.stale(observed_epoch))
            }
            ResponseCode::Refused => Err(ProviderError::permanent(format!(
                "dns {}: update of zone {} refused (REFUSED) — does the server's ACL for {} allow updates with key '{}'?",
                self.server, self.zone, self.zone, self.key_name
            ))),
            code @ (ResponseCode::NotAuth | ResponseCode::NotZone) => Err(ProviderError::permanent(format!(
                "dns {}: the server does not accept updates for zone {} ({code}) — point traffic.server at the zone's primary",
                self.server, self.zone
            ))),
            ResponseCode::ServFail => Err(ProviderError::transient(format!(
                "dns {}: update of zone {} failed (SERVFAIL) — check the server's log",
                self.server, self.zone
            ))),
            code => Err(ProviderError::permanent(format!(
                "dns {}: update of zone {} answered {code}",
                self.server, self.zone
            ))),
        }
    }
}

/// What drover reads from a server's answers, on the answers the fuzz target starts from
/// (fuzz/seeds/dns_answer: written byte by byte as a server sends them).
#[cfg(test)]
mod answers {
    use drover_core::ProviderErrorKind;

    use super::*;

    const SERVER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 53);

    fn read(bytes: &[u8], name: &str, rtype: RecordType) -> Result<dns::Answer, ProviderError> {
        let response = DnsResponse::from_buffer(bytes.to_vec()).expect("a DNS response");
        dns::answer_of(SERVER, &dns::fqdn(name).unwrap(), rtype, &response)
    }

    #[test]
    fn records_of_the_asked_name_and_type_and_their_lowest_ttl() {
        let a = include_bytes!("../../../fuzz/seeds/dns_answer/a.bin");
        let answer = read(a, "api.app.test", RecordType::A).unwrap();
        assert_eq!(
            dns::addresses(&answer.records),
            ["10.200.0.11".parse::<IpAddr>().unwrap(), "10.200.0.12".parse().unwrap()]
        );
        assert_eq!(answer.cache_for(), std::time::Duration::from_secs(5));
        assert!(read(a, "other.app.test", RecordType::A).unwrap().records.is_empty());
        assert!(read(a, "api.app.test", RecordType::AAAA).unwrap().records.is_empty());
    }

    #[test]
    fn no_such_name_is_an_empty_answer_cached_for_the_zones_negative_ttl() {
        let answer = read(include_bytes!("../../../fuzz/seeds/dns_answer/nxdomain.bin"), "api.app.test", RecordType::A);
        let answer = answer.unwrap();
        assert!(answer.records.is_empty());
        assert_eq!(answer.cache_for(), std::time::Duration::from_secs(30));
        let failed = read(include_bytes!("../../../fuzz/seeds/dns_answer/servfail.bin"), "api.app.test", RecordType::A);
        assert_eq!(failed.unwrap_err().kind(), ProviderErrorKind::Transient);
    }

    #[test]
    fn the_epoch_record_holds_one_number_or_is_refused_with_what_it_holds() {
        let name = format!("{EPOCH_LABEL}.api.app.test");
        let epoch = |bytes: &[u8]| epoch_of(&dns::fqdn(&name).unwrap(), &read(bytes, &name, RecordType::TXT).unwrap());
        assert_eq!(epoch(include_bytes!("../../../fuzz/seeds/dns_answer/txt.bin")).unwrap(), EpochRecord::Holds(7));
        let text = epoch(include_bytes!("../../../fuzz/seeds/dns_answer/txt-not-a-number.bin")).unwrap_err();
        assert!(text.message.contains("holds \"x73\", not an epoch number"), "{}", text.message);
        let two = epoch(include_bytes!("../../../fuzz/seeds/dns_answer/txt-two-records.bin")).unwrap_err();
        assert!(two.message.contains("holds 2 values, drover writes one"), "{}", two.message);
        assert_eq!(epoch(include_bytes!("../../../fuzz/seeds/dns_answer/a.bin")).unwrap(), EpochRecord::Absent);
    }
}
