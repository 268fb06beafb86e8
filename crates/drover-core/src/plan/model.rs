use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::custom_steps::StepAction;
use super::kinds::{CheckKind, ComputeKind, DatabaseKind, TrafficKind};
use super::steps::Runbooks;
use crate::event::EventKind;
use crate::secret::{SecretRef, SecretText};

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
    /// Capacity the `scale` step raises in the new primary region, by name (default: none).
    pub compute: BTreeMap<String, ComputeSpec>,
    pub checks: BTreeMap<String, Check>,
    pub policy: Policy,
    pub runbooks: Runbooks,
    /// The plan's own steps by name (`steps`; default: none), which runbooks may name.
    pub steps: BTreeMap<String, StepAction>,
    /// Who is told when runs start, pause, end or are refused (default: nobody).
    pub notify: NotifySpec,
    /// Where the clusters' Kubernetes resources are backed up (default: nowhere).
    pub backup: Option<BackupSpec>,
    /// How drover talks to the AWS APIs (`aws`; default: the default timeouts).
    pub aws: AwsSettings,
    /// Which vantages may vote and the key their reports are signed with (`vantages`;
    /// default: any vantage a daemon is given, unsigned reports).
    pub vantages: VantagesSpec,
    /// How much of its history the journal keeps (`journal`; default: every run).
    pub journal: JournalSpec,
    /// How a drill measures the service (`drill`; default: no canary).
    pub drill: DrillSpec,
}

/// The plan's `drill` section: how a drill measures the service, what stops it, and the
/// settings its faults need.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DrillSpec {
    /// The write canary a drill runs through the service's front door (`drill.canary`).
    pub canary: Option<CanarySpec>,
    /// CloudWatch alarms that stop a drill (`drill.stop_when`): one already in ALARM
    /// refuses the drill; one going to ALARM mid-drill aborts it and undoes its fault.
    pub stop_when: Vec<StopCondition>,
    /// The AWS FIS experiment template a `fis` drill starts, by plan region (`drill.fis`).
    pub fis: BTreeMap<String, String>,
}

/// One of `drill.stop_when`: a CloudWatch alarm in a plan region's AWS region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StopCondition {
    pub alarm: String,
    pub region: String,
}

/// `drill.canary`: numbered writes through the service's public name, read back at the
/// end to count the acknowledged writes that were lost.
#[derive(Clone, Debug, PartialEq)]
pub struct CanarySpec {
    pub target: CanaryTarget,
    /// Time between two numbered writes (`interval`).
    pub interval: Duration,
    /// A write not acknowledged within this counts as failed (`timeout`).
    pub timeout: Duration,
    pub resolve: CanaryResolve,
}

/// What the canary writes to.
#[derive(Clone, Debug, PartialEq)]
pub enum CanaryTarget {
    /// The HTTP canary protocol (docs/drill.md) served by the service itself.
    Http(HttpCanarySpec),
    /// Rows in a table drover owns, through the database's service name.
    Postgres(PostgresCanarySpec),
}

impl CanaryTarget {
    pub fn kind(&self) -> &'static str {
        match self {
            CanaryTarget::Http(_) => "http",
            CanaryTarget::Postgres(_) => "postgres",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct HttpCanarySpec {
    /// The canary's base URL through the public name, e.g. `https://shop.example.com/drover-canary`.
    pub url: String,
    /// Sent as `Authorization: Bearer <token>` (`token_env` / `token_file`).
    pub token: Option<SecretRef>,
    /// The CA that signed the service's certificate (`ca_file`); default: the web's CAs.
    pub ca_file: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PostgresCanarySpec {
    /// A DSN whose host is the service's real name (`dsn_env` / `dsn_file`).
    pub dsn: SecretRef,
    /// The table drover creates and owns (`table`, default `drover_canary`).
    pub table: String,
}

/// How the canary finds the address behind the service's name (`resolve`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CanaryResolve {
    /// As a client does: ask DNS (`dns_server`, or the system's resolver) and cache each
    /// answer for its TTL.
    Dns { server: Option<SocketAddr> },
    /// Follow the plan's traffic record through its provider (for a stack whose traffic
    /// provider serves no DNS, such as moto's Route 53), cached for the record's TTL.
    Traffic,
}

/// The plan's `journal` section.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JournalSpec {
    /// Which ended runs are kept (`journal.keep`); None: all of them.
    pub keep: Option<crate::history::Keep>,
}

/// The plan's `vantages` section. Without it a daemon counts a report from any peer it is
/// given (`--peer NAME=URL`) and trusts whatever answers at that URL; with a key, only
/// reports signed with it count.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VantagesSpec {
    /// The only vantage names whose reports count; empty: any name.
    pub names: Vec<String>,
    /// The shared peer key every report is signed with (HMAC-SHA256); None: unsigned.
    pub key: Option<crate::secret::SecretRef>,
    /// The key before a rotation: still accepted on reports, never used to sign.
    pub previous_key: Option<crate::secret::SecretRef>,
}

/// The plan's `aws` section.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AwsSettings {
    pub timeouts: AwsTimeouts,
}

/// Deadlines on every AWS API call (`aws.timeouts`), so an endpoint that accepts a
/// connection and never answers cannot hold a command forever.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AwsTimeouts {
    /// To open the TCP (and TLS) connection.
    pub connect: Duration,
    /// One HTTP attempt, from sending the request to the whole answer.
    pub attempt: Duration,
    /// One API call with every retry the SDK makes.
    pub operation: Duration,
}

impl Default for AwsTimeouts {
    /// The AWS control-plane calls drover makes (describe, modify, promote, change a record
    /// set) answer in well under a second; what takes minutes (a promotion, a change going
    /// INSYNC) is waited for by polling, one short call at a time. So: 3 s to connect (a
    /// live endpoint's TCP and TLS handshakes take tens of milliseconds, even across an
    /// ocean), 10 s for one attempt (ten times a slow answer), and 30 s for the call with
    /// the SDK's retries (its standard mode makes up to three attempts, with backoff).
    fn default() -> Self {
        AwsTimeouts {
            connect: Duration::from_secs(3),
            attempt: Duration::from_secs(10),
            operation: Duration::from_secs(30),
        }
    }
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

/// The database that moves with the service: PostgreSQL that drover runs itself,
/// an Amazon RDS instance with a cross-region read replica, or an Aurora global database.
#[derive(Clone, Debug, PartialEq)]
pub enum DatabaseSpec {
    Postgres(PostgresSpec),
    Rds(RdsSpec),
    AuroraGlobal(AuroraGlobalSpec),
}

impl DatabaseSpec {
    /// The plan's `database.kind`: what the database can do.
    pub fn kind(&self) -> DatabaseKind {
        match self {
            DatabaseSpec::Postgres(_) => DatabaseKind::Postgres,
            DatabaseSpec::Rds(_) => DatabaseKind::Rds,
            DatabaseSpec::AuroraGlobal(_) => DatabaseKind::AuroraGlobal,
        }
    }

    /// How the standby is fed, as summaries print it. RDS cross-region replicas and
    /// Aurora global databases replicate asynchronously; they are not configurable.
    pub fn replication(&self) -> &'static str {
        match self {
            DatabaseSpec::Postgres(p) => p.replication.as_str(),
            DatabaseSpec::Rds(_) | DatabaseSpec::AuroraGlobal(_) => Replication::Asynchronous.as_str(),
        }
    }

    /// Whether the database exposes WAL positions and lag in bytes (only PostgreSQL run
    /// by drover does): `catch_up` and `policy.max_lag_on_failover` need them.
    pub fn knows_wal_positions(&self) -> bool {
        self.kind().knows_wal_positions()
    }
}

/// `database.kind: rds`: one RDS DB instance per region; the standby region's is a
/// cross-region read replica of the primary's, promoted with PromoteReadReplica.
#[derive(Clone, Debug, PartialEq)]
pub struct RdsSpec {
    /// One DB instance identifier per non-witness region.
    pub members: BTreeMap<String, RdsMember>,
    /// How long a promotion may take until the instance is available and writable (default 30m).
    pub promote_timeout: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RdsMember {
    /// The DB instance identifier in the region's AWS region.
    pub instance: String,
}

/// `database.kind: aurora-global`: an Aurora global database with one cluster per region;
/// SwitchoverGlobalCluster (planned) or FailoverGlobalCluster (unplanned) moves the writer.
#[derive(Clone, Debug, PartialEq)]
pub struct AuroraGlobalSpec {
    /// The global cluster identifier.
    pub global_cluster: String,
    /// One DB cluster identifier per non-witness region.
    pub members: BTreeMap<String, AuroraMember>,
    /// How long a switchover or failover may take until the target cluster writes (default 30m).
    pub timeout: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AuroraMember {
    /// The DB cluster identifier in the region's AWS region.
    pub cluster: String,
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

/// Capacity that follows the primary: sized in the new primary region as a share
/// of what the primary region runs.
#[derive(Clone, Debug, PartialEq)]
pub struct ComputeSpec {
    pub name: String,
    pub kind: ComputeKind,
    /// The new primary region gets this percentage of the old one's desired capacity
    /// (rounded up; default 100).
    pub capacity_percent: u32,
    /// How long the scaled capacity may take to be ready before the step fails (default 15m).
    pub ready_timeout: Duration,
    /// One target per primary and standby region.
    pub targets: BTreeMap<String, ComputeTarget>,
}

/// The `backup` section: Kubernetes backups to object storage in every service region.
#[derive(Clone, Debug, PartialEq)]
pub struct BackupSpec {
    /// Whether Secrets are backed up (encrypted with `key`).
    pub secrets: bool,
    /// The encryption key, by reference; present exactly when `secrets` is.
    pub key: Option<SecretRef>,
    /// Retention: the N newest backups, and the newest of each of the N latest days (0: no limit from that rule).
    pub keep_last: u32,
    pub keep_daily: u32,
    /// How often `drover serve` takes a backup; `None`: only on demand.
    pub schedule: Option<Duration>,
    /// One store per primary and standby region.
    pub stores: BTreeMap<String, BackupStoreSpec>,
    /// The cluster backed up in (and restored to) each store's region: `backup.clusters`,
    /// or the one cluster the region's `kubernetes` compute resources name.
    pub clusters: BTreeMap<String, ClusterAccess>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackupStoreSpec {
    /// `s3://bucket/prefix`; `endpoint` for an S3-compatible server; `aws_region` defaults to the region's.
    S3 { bucket: String, prefix: String, endpoint: Option<String>, aws_region: Option<String> },
    /// A local directory.
    Dir(PathBuf),
}

/// What one region's compute is, in its AWS region (`Plan::aws_region`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ComputeTarget {
    EksNodegroup { cluster: String, nodegroup: String },
    AutoScalingGroup { name: String },
    Kubernetes(KubernetesTarget),
}

/// The workloads one region's cluster runs for a `kubernetes` compute resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubernetesTarget {
    pub cluster: ClusterAccess,
    pub namespace: String,
    /// A label selector (`app=shop,tier!=batch`); None: every workload in the namespace.
    pub selector: Option<String>,
}

/// How drover reaches a region's Kubernetes API server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterAccess {
    /// A kubeconfig file (None: `$KUBECONFIG` or `~/.kube/config`) and a context in it
    /// (None: its current context).
    Kubeconfig { path: Option<std::path::PathBuf>, context: Option<String> },
    /// The service account of the pod drover runs in.
    InCluster,
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
    /// The plan's `traffic.kind`: what the switch can do.
    pub fn kind(&self) -> TrafficKind {
        match self {
            TrafficSpec::Rfc2136(_) => TrafficKind::Rfc2136,
            TrafficSpec::Route53(_) => TrafficKind::Route53,
            TrafficSpec::GlobalAccelerator(_) => TrafficKind::GlobalAccelerator,
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

impl Probe {
    /// The probe's field in the check, and what it does.
    pub fn kind(&self) -> CheckKind {
        match self {
            Probe::Http { .. } => CheckKind::Http,
            Probe::Tcp { .. } => CheckKind::Tcp,
            Probe::Postgres => CheckKind::Postgres,
            Probe::Route53HealthCheck { .. } => CheckKind::Route53HealthCheck,
            Probe::CloudwatchAlarm { .. } => CheckKind::CloudwatchAlarm,
        }
    }

    /// The text `{target}` is filled into (a URL, an address), for kinds that fill it.
    pub fn template(&self) -> Option<&str> {
        match self {
            Probe::Http { url, .. } => Some(url),
            Probe::Tcp { address } => Some(address),
            Probe::Postgres | Probe::Route53HealthCheck { .. } | Probe::CloudwatchAlarm { .. } => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub auto_failover: bool,
    pub require_approval: bool,
    /// Vantages that must agree a region is down.
    pub quorum: u32,
    /// Refuse automatic promotion when the standby is further behind, in bytes of WAL
    /// (PostgreSQL only: RDS and Aurora expose no lag in bytes).
    pub max_lag_on_failover: u64,
    /// Refuse automatic promotion when the standby is further behind in time, or its lag
    /// is unknown. None: no time limit (the default for postgres; rds and aurora-global
    /// default to 1m).
    pub max_lag_time_on_failover: Option<Duration>,
    pub cooldown: Duration,
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
/// path), so the plan may write it only when it holds none (no userinfo, no query).
pub type WebhookUrl = SecretText;

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

    /// The PostgreSQL database section, when drover runs PostgreSQL itself.
    pub fn postgres(&self) -> Option<&PostgresSpec> {
        match &self.database {
            DatabaseSpec::Postgres(p) => Some(p),
            DatabaseSpec::Rds(_) | DatabaseSpec::AuroraGlobal(_) => None,
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
