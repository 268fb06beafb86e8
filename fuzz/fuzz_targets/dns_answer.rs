//! A DNS server's answer as drover reads it: parsed by hickory, then what the traffic
//! adapter and the probe take from it (records of the asked name and type, addresses,
//! the TTL to cache, the epoch TXT).
#![no_main]

use std::net::SocketAddr;

use drover_adapters::dns::{addresses, answer_of};
use drover_adapters::rfc2136::epoch_of;
use hickory_proto::op::DnsResponse;
use hickory_proto::rr::{Name, RecordType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(response) = DnsResponse::from_buffer(data.to_vec()) else { return };
    let server = SocketAddr::from(([127, 0, 0, 1], 53));
    let mut asked: Vec<(Name, RecordType)> = ["api.app.test.", "_drover-epoch.api.app.test."]
        .iter()
        .flat_map(|n| {
            let name = Name::from_ascii(n).expect("a valid name");
            [RecordType::A, RecordType::AAAA, RecordType::TXT].map(|t| (name.clone(), t))
        })
        .collect();
    // The names the answer holds, so the filter by name and type keeps something.
    asked.extend(response.answers.iter().take(4).map(|r| (r.name.clone(), r.record_type())));
    for (name, rtype) in asked {
        if let Ok(answer) = answer_of(server, &name, rtype, &response) {
            let _ = addresses(&answer.records);
            let _ = answer.cache_for();
            let _ = epoch_of(&name, &answer);
        }
    }
});
