//! The kinds of provider a plan can name, one enum per family (database, traffic,
//! compute, check), and what each kind can do. Each family has one table (its
//! `capabilities` function, one row per kind): policy checks, default runbooks,
//! planning and refusals read it, so adding a kind is adding a row, and no code outside
//! the plan reader compares the names a plan writes. `as_str` gives the name back for
//! messages; `from_name` is how the plan reader maps what a plan writes to a kind.

use std::fmt;
use std::time::Duration;

use super::steps::{Runbooks, StepKind};

/// The plan's `database.kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DatabaseKind {
    /// PostgreSQL that drover runs itself (`postgres`).
    Postgres,
    /// An Amazon RDS instance with a cross-region read replica (`rds`).
    Rds,
    /// An Aurora global database (`aurora-global`).
    AuroraGlobal,
}

/// Where a database's replication lag comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LagSource {
    /// The standby's WAL positions: lag in bytes, and in time since the last replayed commit.
    WalPositions,
    /// A CloudWatch metric AWS publishes for the replica (the adapter names it): lag in
    /// time only, unknown without a recent datapoint.
    CloudWatch,
}

/// What a kind of database can do as drover drives it: one row of
/// `DatabaseKind::capabilities`.
#[derive(Clone, Copy, Debug)]
struct DatabaseCapabilities {
    name: &'static str,
    /// Steps a runbook may not name for this kind, and why (docs/aws.md).
    cannot_run: &'static [(StepKind, &'static str)],
    /// What a person does by hand to make an old primary a replica of the new one again;
    /// `None` where drover's `rejoin` step does it.
    rejoin_by_hand: Option<&'static str>,
    /// Why a planned move (switchover, failback) cannot promise no data loss; `None`: it can.
    no_planned_move: Option<&'static str>,
    lag: LagSource,
    /// `policy.max_lag_time_on_failover` when the plan writes none.
    max_lag_time_on_failover: Option<Duration>,
    /// Whether the plan gives drover a connection string per member (`postgres` checks
    /// connect with it).
    member_dsns: bool,
    /// The default runbooks of a plan without compute (`scale` goes after `promote` otherwise).
    failover: &'static [StepKind],
    switchover: &'static [StepKind],
}

/// RDS and Aurora report lag only in time; an automatic failover of them is bounded by this by default.
const DEFAULT_MANAGED_LAG_TIME: Duration = Duration::from_secs(60);

impl DatabaseKind {
    /// In the order messages list them.
    pub const ALL: [DatabaseKind; 3] = [DatabaseKind::Postgres, DatabaseKind::Rds, DatabaseKind::AuroraGlobal];

    /// The table: what each kind can do.
    const fn capabilities(self) -> DatabaseCapabilities {
        use StepKind::*;
        match self {
            DatabaseKind::Postgres => DatabaseCapabilities {
                name: "postgres",
                cannot_run: &[],
                rejoin_by_hand: None,
                no_planned_move: None,
                lag: LagSource::WalPositions,
                max_lag_time_on_failover: None,
                member_dsns: true,
                failover: &[Fence, Promote, Switch, Verify],
                switchover: &[Fence, CatchUp, Promote, Switch, Verify, Rejoin],
            },
            // RDS cannot make a promoted instance a replica again (no rejoin), and has no
            // WAL positions to catch up on: a planned move is refused (docs/aws.md).
            DatabaseKind::Rds => DatabaseCapabilities {
                name: "rds",
                cannot_run: &[
                    (
                        CatchUp,
                        "RDS exposes no WAL positions to confirm the replica has every write of the fenced primary",
                    ),
                    (Rejoin, "RDS cannot make a promoted instance a replica again; create a new read replica by hand"),
                ],
                rejoin_by_hand: Some(
                    "RDS cannot make a promoted instance a replica again; create a new cross-region read replica of the new primary by hand (aws rds create-db-instance-read-replica), delete or rename the old instance, and name the replica in database.members",
                ),
                no_planned_move: Some(
                    "RDS exposes no WAL positions to confirm the replica has every write of the fenced primary, and cannot make the old primary a replica again",
                ),
                lag: LagSource::CloudWatch,
                max_lag_time_on_failover: Some(DEFAULT_MANAGED_LAG_TIME),
                member_dsns: false,
                failover: &[Fence, Promote, Switch, Verify],
                switchover: &[Fence, Promote, Switch, Verify],
            },
            // Aurora demotes the old writer and promotes the new one in one call.
            DatabaseKind::AuroraGlobal => DatabaseCapabilities {
                name: "aurora-global",
                cannot_run: &[
                    (Fence, "SwitchoverGlobalCluster and FailoverGlobalCluster demote the old writer themselves"),
                    (CatchUp, "SwitchoverGlobalCluster waits for the secondary to catch up itself"),
                    (Rejoin, "Aurora makes the old primary cluster a secondary itself once it is back"),
                ],
                rejoin_by_hand: Some(
                    "Aurora makes the old primary cluster a secondary of the global database itself once its region is back; if it does not, remove it from the global cluster and add it again (aws rds remove-from-global-cluster, then create-db-cluster with --global-cluster-identifier)",
                ),
                no_planned_move: None,
                lag: LagSource::CloudWatch,
                max_lag_time_on_failover: Some(DEFAULT_MANAGED_LAG_TIME),
                member_dsns: false,
                failover: &[Promote, Switch, Verify],
                switchover: &[Promote, Switch, Verify],
            },
        }
    }

    /// The name a plan writes (`database.kind`), for messages.
    pub const fn as_str(self) -> &'static str {
        self.capabilities().name
    }

    pub fn from_name(name: &str) -> Option<DatabaseKind> {
        DatabaseKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The steps a runbook may not name for this kind, each with why.
    pub fn cannot_run(self) -> &'static [(StepKind, &'static str)] {
        self.capabilities().cannot_run
    }

    pub fn can_run(self, step: &StepKind) -> bool {
        !self.cannot_run().iter().any(|(s, _)| s == step)
    }

    /// Whether drover fences the old primary itself. A kind that cannot (Aurora) demotes
    /// the old writer in its own promotion, so its runbooks need no fence.
    pub fn can_fence(self) -> bool {
        self.can_run(&StepKind::Fence)
    }

    /// Whether drover's `rejoin` (and so `drover reprotect`) makes an old primary a
    /// standby again; where it cannot, `rejoin_by_hand` says what a person does.
    pub fn can_rejoin(self) -> bool {
        self.can_run(&StepKind::Rejoin)
    }

    /// What to do by hand to make an old primary a replica again; `None` where drover
    /// rejoins it itself.
    pub fn rejoin_by_hand(self) -> Option<&'static str> {
        self.capabilities().rejoin_by_hand
    }

    /// Whether a planned move (switchover, failback) can promise no data loss; why not, if not.
    pub fn planned_move_without_loss(self) -> Result<(), &'static str> {
        match self.capabilities().no_planned_move {
            None => Ok(()),
            Some(why) => Err(why),
        }
    }

    pub fn lag_source(self) -> LagSource {
        self.capabilities().lag
    }

    /// Whether the database exposes WAL positions and lag in bytes: `catch_up` and
    /// `policy.max_lag_on_failover` need them.
    pub fn knows_wal_positions(self) -> bool {
        self.lag_source() == LagSource::WalPositions
    }

    /// `policy.max_lag_time_on_failover` when the plan writes none: none for postgres,
    /// whose lag in bytes bounds a failover; a minute for kinds that know lag only in time.
    pub fn default_max_lag_time_on_failover(self) -> Option<Duration> {
        self.capabilities().max_lag_time_on_failover
    }

    /// Whether the plan holds a connection string for each member (`postgres` checks need one).
    pub fn has_member_dsns(self) -> bool {
        self.capabilities().member_dsns
    }

    /// The default runbooks, with `scale` right after `promote` when the plan has compute to scale.
    pub fn default_runbooks(self, with_compute: bool) -> Runbooks {
        let caps = self.capabilities();
        let mut runbooks = Runbooks { failover: caps.failover.to_vec(), switchover: caps.switchover.to_vec() };
        if with_compute {
            for steps in [&mut runbooks.failover, &mut runbooks.switchover] {
                let at = steps.iter().position(|s| *s == StepKind::Promote).map_or(0, |p| p + 1);
                steps.insert(at, StepKind::Scale);
            }
        }
        runbooks
    }
}

impl Default for Runbooks {
    /// A postgres plan's, without compute.
    fn default() -> Self {
        DatabaseKind::Postgres.default_runbooks(false)
    }
}

/// The plan's `traffic.kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TrafficKind {
    /// A DNS record changed with RFC 2136 updates (`rfc2136`).
    Rfc2136,
    /// Route 53 record sets (`route53`).
    Route53,
    /// An AWS Global Accelerator's endpoint group dials (`global-accelerator`).
    GlobalAccelerator,
}

/// What a kind of traffic switch can do: one row of `TrafficKind::capabilities`.
#[derive(Clone, Copy, Debug)]
struct TrafficCapabilities {
    name: &'static str,
    /// Why no region has an address of its own for a check's `{target}`; `None` when each
    /// region's target is an address (for route53 unless its records are CNAMEs).
    no_region_addresses: Option<&'static str>,
}

impl TrafficKind {
    /// In the order messages list them.
    pub const ALL: [TrafficKind; 3] = [TrafficKind::Rfc2136, TrafficKind::Route53, TrafficKind::GlobalAccelerator];

    /// The table: what each kind can do.
    const fn capabilities(self) -> TrafficCapabilities {
        match self {
            TrafficKind::Rfc2136 => TrafficCapabilities { name: "rfc2136", no_region_addresses: None },
            TrafficKind::Route53 => TrafficCapabilities { name: "route53", no_region_addresses: None },
            TrafficKind::GlobalAccelerator => TrafficCapabilities {
                name: "global-accelerator",
                no_region_addresses: Some(
                    "a global accelerator's static addresses serve every region, so no address is the region's own; \
                     probe each region with cloudwatch_alarm: { <region>: <alarm name> }, or a fixed URL with per_region: false",
                ),
            },
        }
    }

    /// The name a plan writes (`traffic.kind`), for messages.
    pub const fn as_str(self) -> &'static str {
        self.capabilities().name
    }

    pub fn from_name(name: &str) -> Option<TrafficKind> {
        TrafficKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Why a check's `{target}` can name no region's address with this kind, if it never can.
    pub fn no_region_addresses(self) -> Option<&'static str> {
        self.capabilities().no_region_addresses
    }
}

/// The kind of a `compute` resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ComputeKind {
    EksNodegroup,
    AutoScalingGroup,
    /// Deployments, StatefulSets and HorizontalPodAutoscalers chosen by a namespace and a label selector.
    Kubernetes,
}

/// Whose API resizes a kind of compute, which decides who grants drover the right to,
/// and which adapter reaches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ComputeApi {
    /// AWS: `drover plan iam` lists the actions.
    Aws,
    /// The cluster's API server: RBAC grants it (docs/kubernetes.md).
    Kubernetes,
}

/// What a kind of compute is: one row of `ComputeKind::capabilities`.
#[derive(Clone, Copy, Debug)]
struct ComputeCapabilities {
    name: &'static str,
    api: ComputeApi,
}

impl ComputeKind {
    /// In the order messages list them.
    pub const ALL: [ComputeKind; 3] =
        [ComputeKind::EksNodegroup, ComputeKind::AutoScalingGroup, ComputeKind::Kubernetes];

    /// The table: what each kind is.
    const fn capabilities(self) -> ComputeCapabilities {
        match self {
            ComputeKind::EksNodegroup => ComputeCapabilities { name: "eks-nodegroup", api: ComputeApi::Aws },
            ComputeKind::AutoScalingGroup => ComputeCapabilities { name: "autoscaling-group", api: ComputeApi::Aws },
            ComputeKind::Kubernetes => ComputeCapabilities { name: "kubernetes", api: ComputeApi::Kubernetes },
        }
    }

    /// The name a plan writes (`compute.<name>.kind`), for messages.
    pub const fn as_str(self) -> &'static str {
        self.capabilities().name
    }

    pub fn from_name(name: &str) -> Option<ComputeKind> {
        ComputeKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    pub fn api(self) -> ComputeApi {
        self.capabilities().api
    }

    /// Whether it launches machines from a template or image that must exist in its region
    /// (readiness asks `Compute::can_launch`); Kubernetes workloads run on the cluster's nodes.
    pub fn launches_machines(self) -> bool {
        self.api() == ComputeApi::Aws
    }
}

/// The probe a check runs: the one probe field a check names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CheckKind {
    Http,
    Tcp,
    Postgres,
    Route53HealthCheck,
    CloudwatchAlarm,
}

/// What a kind of check does: one row of `CheckKind::capabilities`.
#[derive(Clone, Copy, Debug)]
struct CheckCapabilities {
    name: &'static str,
    /// Whether its text (a URL, an address) may name the region's traffic target as `{target}`.
    fills_target: bool,
    /// Whether it reads an HTTP response, so `status` and `body_contains` apply.
    reads_http_response: bool,
    /// Whether it connects to the region's database member with the member's connection string.
    connects_to_member: bool,
}

impl CheckKind {
    /// In the order messages list them.
    pub const ALL: [CheckKind; 5] = [
        CheckKind::Http,
        CheckKind::Tcp,
        CheckKind::Postgres,
        CheckKind::Route53HealthCheck,
        CheckKind::CloudwatchAlarm,
    ];

    /// The table: what each kind does.
    const fn capabilities(self) -> CheckCapabilities {
        const NONE: CheckCapabilities =
            CheckCapabilities { name: "", fills_target: false, reads_http_response: false, connects_to_member: false };
        match self {
            CheckKind::Http => {
                CheckCapabilities { name: "http", fills_target: true, reads_http_response: true, ..NONE }
            }
            CheckKind::Tcp => CheckCapabilities { name: "tcp", fills_target: true, ..NONE },
            CheckKind::Postgres => CheckCapabilities { name: "postgres", connects_to_member: true, ..NONE },
            CheckKind::Route53HealthCheck => CheckCapabilities { name: "route53_health_check", ..NONE },
            CheckKind::CloudwatchAlarm => CheckCapabilities { name: "cloudwatch_alarm", ..NONE },
        }
    }

    /// The probe's field name in a check (`http`, `route53_health_check`, ...).
    pub const fn as_str(self) -> &'static str {
        self.capabilities().name
    }

    pub fn from_name(name: &str) -> Option<CheckKind> {
        CheckKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    pub fn fills_target(self) -> bool {
        self.capabilities().fills_target
    }

    pub fn reads_http_response(self) -> bool {
        self.capabilities().reads_http_response
    }

    pub fn connects_to_member(self) -> bool {
        self.capabilities().connects_to_member
    }
}

macro_rules! display_as_str {
    ($($kind:ty),*) => {$(
        impl fmt::Display for $kind {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}
display_as_str!(DatabaseKind, TrafficKind, ComputeKind, CheckKind);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_as_their_kind() {
        for kind in DatabaseKind::ALL {
            assert_eq!(DatabaseKind::from_name(kind.as_str()), Some(kind));
        }
        for kind in TrafficKind::ALL {
            assert_eq!(TrafficKind::from_name(kind.as_str()), Some(kind));
        }
        for kind in ComputeKind::ALL {
            assert_eq!(ComputeKind::from_name(kind.as_str()), Some(kind));
        }
        for kind in CheckKind::ALL {
            assert_eq!(CheckKind::from_name(kind.as_str()), Some(kind));
        }
        assert_eq!(DatabaseKind::from_name("mysql"), None);
    }

    /// A default runbook is one the plan reader accepts: no step the kind cannot run,
    /// always a promote, a fence wherever the kind can fence, and the steps in order.
    #[test]
    fn default_runbooks_hold_only_steps_the_kind_can_run() {
        for kind in DatabaseKind::ALL {
            for with_compute in [false, true] {
                let runbooks = kind.default_runbooks(with_compute);
                for steps in [&runbooks.failover, &runbooks.switchover] {
                    for step in steps {
                        assert!(kind.can_run(step), "{kind}: default runbook {steps:?} has {step:?}");
                    }
                    assert!(steps.contains(&StepKind::Promote), "{kind}: {steps:?}");
                    assert_eq!(steps.contains(&StepKind::Fence), kind.can_fence(), "{kind}: {steps:?}");
                    assert_eq!(steps.contains(&StepKind::Scale), with_compute, "{kind}: {steps:?}");
                    assert!(steps.windows(2).all(|w| w[0].order() < w[1].order()), "{kind}: {steps:?}");
                }
            }
        }
    }

    #[test]
    fn a_kind_drover_cannot_rejoin_says_what_to_do_by_hand() {
        for kind in DatabaseKind::ALL {
            assert_eq!(kind.rejoin_by_hand().is_some(), !kind.can_rejoin(), "{kind}");
        }
    }

    /// catch_up waits on WAL positions, and a planned move promises no loss only when
    /// something confirms the target has every write: catch_up, or the kind's own switchover.
    #[test]
    fn wal_positions_catch_up_and_planned_moves_agree() {
        for kind in DatabaseKind::ALL {
            if kind.can_run(&StepKind::CatchUp) {
                assert!(kind.knows_wal_positions(), "{kind}");
            }
            // Lag known only in time bounds an automatic failover by time by default.
            assert_eq!(kind.default_max_lag_time_on_failover().is_some(), !kind.knows_wal_positions(), "{kind}");
        }
        use DatabaseKind::*;
        assert_eq!(Postgres.planned_move_without_loss(), Ok(()));
        assert!(Rds.planned_move_without_loss().is_err());
        assert_eq!(AuroraGlobal.planned_move_without_loss(), Ok(()));
        assert!(!AuroraGlobal.can_fence() && Rds.can_fence() && Postgres.can_fence());
        assert!(Postgres.can_rejoin() && !Rds.can_rejoin() && !AuroraGlobal.can_rejoin());
        assert!(Postgres.has_member_dsns() && !Rds.has_member_dsns() && !AuroraGlobal.has_member_dsns());
    }

    #[test]
    fn traffic_compute_and_check_tables() {
        use TrafficKind::*;
        assert!(GlobalAccelerator.no_region_addresses().is_some() && Rfc2136.no_region_addresses().is_none());
        assert!(Route53.no_region_addresses().is_none());
        assert_eq!(ComputeKind::AutoScalingGroup.api(), ComputeApi::Aws);
        assert_eq!(ComputeKind::EksNodegroup.api(), ComputeApi::Aws);
        assert_eq!(ComputeKind::Kubernetes.api(), ComputeApi::Kubernetes);
        for kind in CheckKind::ALL {
            // Only HTTP reads a response; a member connection has no `{target}`.
            assert_eq!(kind.reads_http_response(), kind == CheckKind::Http);
            assert!(!(kind.fills_target() && kind.connects_to_member()), "{kind}");
        }
    }
}
