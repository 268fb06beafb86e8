//! A vantage report as a peer (HTTP) or etcd hands it over: parsed, admitted under the
//! plan's rules (with and without a peer key, signed and not) and counted in the verdicts.
#![no_main]

use std::sync::OnceLock;

use drover_core::plan::Plan;
use drover_core::vantage::{PeerKeys, ReportRules, VantageReport, acting_vantage, verdicts};
use libfuzzer_sys::fuzz_target;

fn plan() -> &'static Plan {
    static PLAN: OnceLock<Plan> = OnceLock::new();
    PLAN.get_or_init(drover_core::testing::scenarios::two_region_plan)
}

fuzz_target!(|data: &[u8]| {
    let Ok(report) = serde_json::from_slice::<VantageReport>(data) else { return };
    let plan = plan();
    let open = ReportRules::new(plan, None);
    let keyed = ReportRules::new(plan, Some(PeerKeys::new(b"0123456789abcdef0123456789abcdef".to_vec(), None)));
    let name = report.vantage.clone();
    let mut admitted = Vec::new();
    for now_ms in [0, report.at_ms, report.expires_ms, u64::MAX] {
        for rules in [&open, &keyed] {
            if let Ok(r) = rules.admit(report.clone(), &name, now_ms) {
                // Trusted for at most one time to live after it arrived, whatever it claims.
                assert!(r.expires_ms <= now_ms.saturating_add(rules.ttl_ms));
                admitted.push(r);
            }
        }
        // Signed here, it passes the signature check: the time checks see any `at_ms`.
        let mut sealed = report.clone();
        keyed.seal(&mut sealed);
        if let Ok(r) = keyed.admit(sealed, &name, now_ms) {
            admitted.push(r);
        }
        let judged = verdicts(plan, &admitted, now_ms);
        let _ = acting_vantage(&admitted, &judged, now_ms);
    }
});
