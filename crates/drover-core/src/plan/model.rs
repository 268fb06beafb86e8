use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::notify::EventKind;
use crate::secret::{Secret, SecretRef, SecretSource};

/// A validated plan. Every reference in it (regions, checks) resolves.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub name: String,
    /// The file it was read from; the default state directory sits beside it.
    pub source: PathBuf,
    pub objectives: Objectives,
    /// Ordered by name, so output is stable.
    pub regions: BTreeMap<String, Region>,
    pub database: DatabaseSpec,
    pub traffic: TrafficSpec,
    pub checks: BTreeMap<String, Check>,
    pub policy: Policy,
    pub runbooks: Runbooks,
    /// Who is told when runs start, pause, end or are refused (default: nobody).
    pub notify: NotifySpec,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Objectives {
    pub rto: Duration,
    pub rpo: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Region {
    pub role: Role,
    /// The AWS region its AWS resources live in (`aws_region`); `None`: the region's own name.
    pub aws_region: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Primary,
    Standby,
    Witness,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Standby => "standby",
            Role::Witness => "witness",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Replication {
    Synchronous,
    Asynchronous,
}

impl Replication {
    pub fn as_str(self) -> &'static str {
        match self {
            Replication::Synchronous => "synchronous",
            Replication::Asynchronous => "asynchronous",
        }
    }
}

/// The database that moves with the service. Only PostgreSQL for now; RDS and
/// Aurora become new arms here.
#[derive(Clone, Debug, PartialEq)]
pub enum DatabaseSpec {
    Postgres(PostgresSpec),
}

#[derive(Clone, Debug, PartialEq)]
pub struct PostgresSpec {
    pub replication: Replication,
    /// One member per non-witness region.
    pub members: BTreeMap<String, PostgresMember>,
    /// How long a promotion may take before the step fails (default 60s).
    pub promote_timeout: Duration,
    /// How long connecting to a member may take before it counts as unreachable
    /// (default 2s). Shorter detects a lost primary's fence sooner in a failover;
    /// too short skips fencing a primary that is merely slow.
    pub connect_timeout: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PostgresMember {
    /// libpq connection string, by reference (it holds a password).
    pub dsn: SecretRef,
    /// How drover reaches the member's host to stop, rewind and start it
    /// (switchover's `rejoin`). Absent: rejoin is refused with a reason.
    pub host: Option<MemberHost>,
}

/// Commands on a member's host run as `exec` + argv: `[ssh, db-east]` in real
/// life, `[ip, netns, exec, drover-east, runuser, -u, postgres, --]` in the lab.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberHost {
    pub exec: Vec<String>,
    pub data_dir: PathBuf,
    /// Where pg_ctl and pg_rewind live (default /usr/lib/postgresql/15/bin).
    pub bin_dir: PathBuf,
}

/// How clients reach the service: RFC 2136 DNS, Route 53, or an AWS Global
/// Accelerator's endpoint group dials.
#[derive(Clone, Debug, PartialEq)]
pub enum TrafficSpec {
    Rfc2136(Rfc2136Spec),
    Route53(Route53Spec),
    GlobalAccelerator(GlobalAcceleratorSpec),
}

impl TrafficSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            TrafficSpec::Rfc2136(_) => "rfc2136",
            TrafficSpec::Route53(_) => "route53",
            TrafficSpec::GlobalAccelerator(_) => "global-accelerator",
        }
    }

    /// What clients reach: the name they resolve (fully qualified), or the accelerator's ARN.
    pub fn record(&self) -> &str {
        match self {
            TrafficSpec::Rfc2136(t) => &t.record,
            TrafficSpec::Route53(t) => &t.record,
            TrafficSpec::GlobalAccelerator(t) => &t.accelerator_arn,
        }
    }

    /// Each region's target as an address, for checks' `{target}`; a Route 53
    /// CNAME target is a name, not an address, and is left out; a Global
    /// Accelerator's static addresses serve every region, so it has none per region.
    pub fn target_addresses(&self) -> BTreeMap<String, IpAddr> {
        match self {
            TrafficSpec::Rfc2136(t) => t.targets.clone(),
            TrafficSpec::Route53(t) => {
                t.targets.iter().filter_map(|(r, target)| Some((r.clone(), target.value.parse().ok()?))).collect()
            }
            TrafficSpec::GlobalAccelerator(_) => BTreeMap::new(),
        }
    }
}

/// An AWS Global Accelerator whose endpoint groups (one per region) are switched
/// with their traffic dials; the epoch is a tag on the accelerator.
#[derive(Clone, Debug, PartialEq)]
pub struct GlobalAcceleratorSpec {
    /// `arn:aws:globalaccelerator::<account>:accelerator/<id>`.
    pub accelerator_arn: String,
    /// One endpoint group per primary and standby region.
    pub endpoint_groups: BTreeMap<String, EndpointGroupTarget>,
    /// Percent of the other regions' traffic moved to the new region at each
    /// stage, rising, ending at 100 (default `[100]`: at once).
    pub stages: Vec<u8>,
    /// How long the target's critical checks run between stages (default 60s).
    pub stage_pause: Duration,
    /// How long the accelerator may take to be DEPLOYED after a change before the step fails (default 5m).
    pub change_timeout: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EndpointGroupTarget {
    /// The endpoint group's ARN (under the accelerator's).
    pub arn: String,
    /// Endpoint id (load balancer ARN, Elastic IP allocation id, instance id) -> weight
    /// 0..=255, set on every switch; empty: the group's endpoints are left as they are.
    pub endpoints: BTreeMap<String, u8>,
}

/// Route 53 record sets in one hosted zone, one per region, switched in
/// change batches that also move the epoch TXT record (the fence).
#[derive(Clone, Debug, PartialEq)]
pub struct Route53Spec {
    /// e.g. `Z0123456789ABCDEFGHIJ` (a `/hostedzone/` prefix is removed).
    pub hosted_zone_id: String,
    /// Fully qualified, lowercase, ending in a dot.
    pub record: String,
    pub record_type: Route53RecordType,
    pub ttl: Duration,
    pub routing: Route53Routing,
    /// One record set per primary and standby region.
    pub targets: BTreeMap<String, Route53Target>,
    /// How long one change may take to reach INSYNC before the step fails (default 5m).
    pub change_timeout: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route53RecordType {
    A,
    Aaaa,
    Cname,
}

impl Route53RecordType {
    pub fn as_str(self) -> &'static str {
        match self {
            Route53RecordType::A => "A",
            Route53RecordType::Aaaa => "AAAA",
            Route53RecordType::Cname => "CNAME",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Route53Routing {
    /// The serving region's record is PRIMARY, the other one SECONDARY.
    Failover,
    /// The serving region's record carries all the weight; a switch moves it
    /// through `stages` (percent of the weight on the new region), pausing
    /// `stage_pause` after each but the last while the target's critical
    /// checks run; a failing check stops the shift where it is.
    Weighted { stages: Vec<u8>, stage_pause: Duration },
}

impl Route53Routing {
    pub fn as_str(&self) -> &'static str {
        match self {
            Route53Routing::Failover => "failover",
            Route53Routing::Weighted { .. } => "weighted",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Route53Target {
    /// An IPv4 address (A), an IPv6 address (AAAA) or a DNS name (CNAME).
    pub value: String,
    /// Tells the region's record set apart from the others of the same name (default: the region's name).
    pub set_identifier: String,
    /// The Route 53 health check attached to the record set, if any.
    pub health_check_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Rfc2136Spec {
    pub server: SocketAddr,
    /// Fully qualified, ending in a dot.
    pub zone: String,
    /// Fully qualified, ending in a dot.
    pub record: String,
    pub ttl: Duration,
    pub tsig: Tsig,
    /// The address clients should reach for each region.
    pub targets: BTreeMap<String, IpAddr>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Tsig {
    pub name: String,
    pub algorithm: TsigAlgorithm,
    pub secret: SecretRef,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsigAlgorithm {
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl TsigAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            TsigAlgorithm::HmacSha256 => "hmac-sha256",
            TsigAlgorithm::HmacSha384 => "hmac-sha384",
            TsigAlgorithm::HmacSha512 => "hmac-sha512",
        }
    }
}

/// A probe with Route 53 semantics: `failure_threshold` consecutive failures
/// make it unhealthy, `success_threshold` consecutive successes healthy again.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    pub name: String,
    pub probe: Probe,
    pub interval: Duration,
    pub timeout: Duration,
    pub failure_threshold: u32,
    pub success_threshold: u32,
    /// Run once per non-witness region, with `{target}` / `{member}` filled in.
    pub per_region: bool,
    /// Counts toward a region's verdict (default true).
    pub critical: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Probe {
    /// URL template; `{target}` is the region's traffic target.
    Http {
        url: String,
        /// Expected HTTP status (default 200).
        status: u16,
        /// Optional substring the body must contain.
        body_contains: Option<String>,
    },
    /// `host:port` template; `{target}` is the region's traffic target.
    Tcp { address: String },
    /// Connects to the region's database member and runs `SELECT 1`.
    Postgres,
    /// Reads a Route 53 health check's status (GetHealthCheckStatus): one id
    /// per region, or one for the whole service (`per_region: false`, key `""`).
    Route53HealthCheck { ids: BTreeMap<String, String> },
    /// Reads a CloudWatch alarm's state (DescribeAlarms) in the region's AWS region:
    /// OK passes; ALARM and INSUFFICIENT_DATA fail. One alarm name per region.
    CloudwatchAlarm { alarms: BTreeMap<String, String> },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub auto_failover: bool,
    pub require_approval: bool,
    /// Vantages that must agree a region is down.
    pub quorum: u32,
    /// Refuse automatic promotion when the standby is further behind.
    pub max_lag_on_failover: u64,
    pub cooldown: Duration,
}

/// A step a runbook can name. The engine knows how to observe and apply each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Make the old primary refuse writes (best effort when it is unreachable in a failover).
    Fence,
    /// Wait until the target has replayed all WAL the fenced old primary wrote.
    CatchUp,
    /// Raise the epoch, promote the target, and record the epoch in it.
    Promote,
    /// Point traffic at the target, conditional on the epoch.
    Switch,
    /// Run the plan's checks against the target until they pass.
    Verify,
    /// Make the old primary a streaming standby of the new one.
    Rejoin,
    /// Tell the plan's webhooks where the run stands (at least once; never waits for them).
    Notify,
}

impl StepKind {
    pub const ALL: [StepKind; 7] = [
        StepKind::Fence,
        StepKind::CatchUp,
        StepKind::Promote,
        StepKind::Switch,
        StepKind::Verify,
        StepKind::Rejoin,
        StepKind::Notify,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Fence => "fence",
            StepKind::CatchUp => "catch_up",
            StepKind::Promote => "promote",
            StepKind::Switch => "switch",
            StepKind::Verify => "verify",
            StepKind::Rejoin => "rejoin",
            StepKind::Notify => "notify",
        }
    }

    /// Position in the only order runs may take them: fence before catch-up before
    /// promote, traffic only to a promoted target, the old primary rejoined last.
    pub fn order(self) -> usize {
        StepKind::ALL.iter().position(|&k| k == self).expect("every step is in ALL")
    }

    pub fn from_name(name: &str) -> Option<StepKind> {
        StepKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Runbooks {
    /// Unplanned: default `[fence, promote, switch, verify]`.
    pub failover: Vec<StepKind>,
    /// Planned, zero data loss: default `[fence, catch_up, promote, switch, verify, rejoin]`.
    pub switchover: Vec<StepKind>,
}

impl Default for Runbooks {
    fn default() -> Self {
        use StepKind::*;
        Runbooks {
            failover: vec![Fence, Promote, Switch, Verify],
            switchover: vec![Fence, CatchUp, Promote, Switch, Verify, Rejoin],
        }
    }
}

/// Where run events are sent. The default sends nothing.
#[derive(Clone, Debug, PartialEq)]
pub struct NotifySpec {
    /// A page a responder should open, carried in every notification.
    pub runbook_url: Option<String>,
    /// Ordered by name, so output is stable.
    pub webhooks: BTreeMap<String, WebhookSpec>,
    /// The events webhooks get unless they list their own (default: all), in plan order.
    pub on: Vec<EventKind>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WebhookSpec {
    pub name: String,
    pub kind: WebhookKind,
    pub url: WebhookUrl,
    /// PagerDuty's integration key, by reference; only (and always) for `pagerduty`.
    pub routing_key: Option<SecretRef>,
    /// The events this webhook gets: its own `on`, or the section's.
    pub on: Vec<EventKind>,
}

impl WebhookSpec {
    pub fn wants(&self, event: EventKind) -> bool {
        self.on.contains(&event)
    }
}

/// The body a webhook expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookKind {
    /// The event itself as JSON, for any receiver.
    Json,
    /// A Slack incoming webhook (or a compatible one: Mattermost, Rocket.Chat).
    Slack,
    /// PagerDuty Events API v2.
    Pagerduty,
}

impl WebhookKind {
    pub const ALL: [WebhookKind; 3] = [WebhookKind::Json, WebhookKind::Slack, WebhookKind::Pagerduty];

    pub fn as_str(self) -> &'static str {
        match self {
            WebhookKind::Json => "json",
            WebhookKind::Slack => "slack",
            WebhookKind::Pagerduty => "pagerduty",
        }
    }
}

/// A webhook URL often is its own credential (Slack's carries the token in its
/// path), so the plan may write it only when it holds none.
#[derive(Clone, Debug, PartialEq)]
pub enum WebhookUrl {
    /// Written in the plan: no userinfo, no query string.
    Plain(String),
    /// Held in an environment variable or a file.
    Secret(SecretRef),
}

impl WebhookUrl {
    /// The URL to post to; a plain one is wrapped too, so every URL is handled as a secret.
    pub fn resolve(&self, secrets: &dyn SecretSource) -> Result<Secret, String> {
        match self {
            WebhookUrl::Plain(url) => Ok(Secret::new(url.clone())),
            WebhookUrl::Secret(reference) => secrets.resolve(reference),
        }
    }
}

impl Plan {
    /// The region whose role in the plan is primary (validation guarantees exactly one).
    pub fn planned_primary(&self) -> &str {
        self.regions
            .iter()
            .find(|(_, r)| r.role == Role::Primary)
            .map(|(n, _)| n.as_str())
            .expect("validated plan has a primary region")
    }

    /// Regions that run the service (primary and standby), in name order.
    /// The AWS region of a plan region: its `aws_region`, or its name (plans for AWS
    /// usually name regions after AWS's, e.g. `us-east-2`).
    pub fn aws_region<'a>(&'a self, region: &'a str) -> &'a str {
        self.regions.get(region).and_then(|r| r.aws_region.as_deref()).unwrap_or(region)
    }

    pub fn service_regions(&self) -> impl Iterator<Item = &str> {
        self.regions.iter().filter(|(_, r)| r.role != Role::Witness).map(|(n, _)| n.as_str())
    }

    pub fn postgres(&self) -> &PostgresSpec {
        match &self.database {
            DatabaseSpec::Postgres(p) => p,
        }
    }

    /// The RFC 2136 traffic section, when traffic is switched that way.
    pub fn rfc2136(&self) -> Option<&Rfc2136Spec> {
        match &self.traffic {
            TrafficSpec::Rfc2136(t) => Some(t),
            TrafficSpec::Route53(_) | TrafficSpec::GlobalAccelerator(_) => None,
        }
    }

    /// The checks that apply to a region, with templates filled in.
    pub fn checks_for<'a>(&'a self, region: &'a str) -> impl Iterator<Item = &'a Check> + 'a {
        self.checks
            .values()
            .filter(move |c| c.per_region && self.regions.get(region).is_some_and(|r| r.role != Role::Witness))
    }
}
