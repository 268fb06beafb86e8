//! Drills' faults: what a drill breaks in a region, and how it is set back. Each kind is a
//! row of one table ([`FaultKind::capabilities`]: its name, what it needs in the plan, what
//! it changes and its undo), and each is driven through one trait, [`Injector`], in the
//! shape of a step: capture what it will change, inject, observe (read back), undo.
//!
//! The life of a fault in a drill (the drill's driver journals, the injector never does):
//! 1. [`FaultKind::can_inject`] refuses a fault that does not fit the plan (exit 2, with why).
//! 2. [`Injector::capture`] reads what the fault will change; the driver journals the
//!    [`FaultState`] it returns *before* injecting. It is captured once per drill: a resumed
//!    drill uses the journaled state, never a new capture (which would read the fault itself).
//! 3. [`Injector::inject`] breaks things; given the same state a second call changes nothing more.
//! 4. [`Injector::observe`] reads the world back: is the fault in place?
//! 5. [`Injector::undo`] sets back what the state says, at the end, on abort, on Ctrl-C, and
//!    after a crash from the journaled state alone, in a new process, through a newly built
//!    injector. An undo twice, or of a fault never injected, changes nothing.
//!
//! The injectors themselves live with what they touch: [`NoFault`] and [`ScaleToZero`] (over
//! any [`Compute`]) here, the AWS ones in `drover-adapters` (`faults::injector_for` builds
//! any non-lab kind), the lab's in `drover-lab`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::capacity::Size;
use crate::error::ProviderError;
use crate::plan::{ComputeApi, ComputeTarget, DatabaseSpec, Plan, Role, TrafficSpec};
use crate::world::Compute;

/// A drill's fault, as a plan, a flag or the journal names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum FaultKind {
    /// No fault: a planned switchover drill.
    None,
    /// Lab: drop all traffic in and out of the region.
    Blackout,
    /// Lab: SIGKILL the region's PostgreSQL postmaster.
    Kill,
    /// Lab: SIGSTOP the region's PostgreSQL processes.
    Pause,
    /// Lab: drop traffic between the region and another.
    Partition,
    /// Lab: drop a share of the region's packets.
    Loss,
    /// Invert the region's Route 53 health checks.
    Route53HealthCheck,
    /// Start an AWS FIS experiment template.
    Fis,
    /// Reboot the region's RDS instance.
    RdsReboot,
    /// Stop the region's RDS instance.
    RdsStop,
    /// Suspend the region's Auto Scaling groups' processes.
    AsgSuspend,
    /// Scale the region's Auto Scaling groups and EKS node groups to zero.
    AsgScaleToZero,
    /// Scale the region's Kubernetes workloads to zero replicas.
    KubernetesScaleToZero,
}

/// What a kind of fault needs in the plan, for its region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Needs {
    /// Any region of the plan.
    Nothing,
    /// A lab plan (PostgreSQL run by drover, RFC 2136 traffic); any of its regions.
    LabRegion,
    /// A lab plan, and a database member in the region.
    LabMember,
    /// Route 53 traffic whose record set for the region has a health check.
    Route53HealthCheck,
    /// A service region (the experiment template comes from the drill's settings).
    ServiceRegion,
    /// An `rds` database with a member in the region.
    RdsMember,
    /// An `autoscaling-group` compute resource in the region.
    AutoScalingGroup,
    /// An `autoscaling-group` or `eks-nodegroup` compute resource in the region.
    AwsCompute,
    /// A `kubernetes` compute resource in the region.
    KubernetesCompute,
}

/// One row of the table.
#[derive(Clone, Copy, Debug)]
struct FaultCapabilities {
    name: &'static str,
    needs: Needs,
    /// What it changes, for help and docs.
    changes: &'static str,
    /// What its undo sets back.
    undo: &'static str,
}

impl FaultKind {
    /// In the order messages list them.
    pub const ALL: [FaultKind; 13] = [
        FaultKind::None,
        FaultKind::Blackout,
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::Partition,
        FaultKind::Loss,
        FaultKind::Route53HealthCheck,
        FaultKind::Fis,
        FaultKind::RdsReboot,
        FaultKind::RdsStop,
        FaultKind::AsgSuspend,
        FaultKind::AsgScaleToZero,
        FaultKind::KubernetesScaleToZero,
    ];

    /// The table: what each kind needs, changes and sets back.
    const fn capabilities(self) -> FaultCapabilities {
        use Needs::*;
        let (name, needs, changes, undo) = match self {
            FaultKind::None => ("none", Nothing, "nothing: a planned switchover drill", "nothing"),
            FaultKind::Blackout => (
                "blackout",
                LabRegion,
                "drops all traffic in and out of the lab region (nftables)",
                "lab heal: removes the region's tables",
            ),
            FaultKind::Kill => (
                "kill",
                LabMember,
                "SIGKILLs the lab region's PostgreSQL postmaster",
                "lab heal: starts the database again",
            ),
            FaultKind::Pause => {
                ("pause", LabMember, "SIGSTOPs the lab region's PostgreSQL processes", "lab heal: SIGCONTs them")
            }
            FaultKind::Partition => (
                "partition",
                LabRegion,
                "drops traffic between the lab region and another (default: the other service region)",
                "lab heal: removes the partition on both sides",
            ),
            FaultKind::Loss => (
                "loss",
                LabRegion,
                "drops a share of the lab region's packets at random (default 5%)",
                "lab heal: removes the region's tables",
            ),
            FaultKind::Route53HealthCheck => (
                "route53-health-check",
                Route53HealthCheck,
                "inverts the Route 53 health check of the region's record set (UpdateHealthCheck Inverted), so Route 53 judges it unhealthy",
                "sets each health check's Inverted back to what it was",
            ),
            FaultKind::Fis => (
                "fis",
                ServiceRegion,
                "starts the drill's AWS FIS experiment template in the region's AWS region (StartExperiment, tagged drover-drill=ID)",
                "stops every experiment tagged with the drill's id (StopExperiment)",
            ),
            FaultKind::RdsReboot => (
                "rds-reboot",
                RdsMember,
                "reboots the region's RDS instance (RebootDBInstance)",
                "nothing to set back: the instance comes back by itself",
            ),
            FaultKind::RdsStop => (
                "rds-stop",
                RdsMember,
                "stops the region's RDS instance (StopDBInstance)",
                "starts it again (StartDBInstance) if it was available before",
            ),
            FaultKind::AsgSuspend => (
                "asg-suspend",
                AutoScalingGroup,
                "suspends the Launch, HealthCheck, ReplaceUnhealthy, AZRebalance, AlarmNotification and ScheduledActions processes of the region's Auto Scaling groups",
                "resumes only the processes it suspended",
            ),
            FaultKind::AsgScaleToZero => (
                "asg-scale-to-zero",
                AwsCompute,
                "sets min and desired capacity of the region's Auto Scaling groups and EKS node groups to 0",
                "sets min, max and desired back to what they were, and waits for them",
            ),
            FaultKind::KubernetesScaleToZero => (
                "kubernetes-scale-to-zero",
                KubernetesCompute,
                "scales the region's Kubernetes workloads (the plan's kubernetes compute) to 0 replicas",
                "sets their replicas (and autoscalers) back, and waits until they are ready",
            ),
        };
        FaultCapabilities { name, needs, changes, undo }
    }

    /// The name a plan, a flag and the journal write.
    pub const fn name(self) -> &'static str {
        self.capabilities().name
    }

    /// What the fault changes, in a sentence (help, docs, reports).
    pub const fn changes(self) -> &'static str {
        self.capabilities().changes
    }

    /// What its undo sets back, in a sentence.
    pub const fn undo(self) -> &'static str {
        self.capabilities().undo
    }

    /// Whether the lab injects it (`drover-lab` builds its injector, not the adapters).
    pub const fn is_lab(self) -> bool {
        matches!(self.capabilities().needs, Needs::LabRegion | Needs::LabMember)
    }

    /// Whether its undo brings the faulted region's database back: an RDS instance started,
    /// a PostgreSQL resumed or restarted, a region's network healed. Once a drill's failover
    /// began, that database is an old primary that may come back writable, so such an undo
    /// waits for a person (docs/drill.md). A FIS experiment is always stopped: left running
    /// it goes on harming, and what its template's actions set back is the template's.
    pub const fn revives_old_primary(self) -> bool {
        matches!(
            self,
            FaultKind::RdsStop
                | FaultKind::Blackout
                | FaultKind::Kill
                | FaultKind::Pause
                | FaultKind::Partition
                | FaultKind::Loss
        )
    }

    /// Whether it calls AWS (the plan's `aws` settings and `drover plan iam` apply).
    pub const fn is_aws(self) -> bool {
        matches!(
            self,
            FaultKind::Route53HealthCheck
                | FaultKind::Fis
                | FaultKind::RdsReboot
                | FaultKind::RdsStop
                | FaultKind::AsgSuspend
                | FaultKind::AsgScaleToZero
        )
    }

    /// Whether this fault fits `plan` in `region`; the error says why not, naming the plan
    /// field to add (the caller refuses the drill with exit 2, nothing done). It judges the
    /// plan only: whether a lab runs, or a FIS template is given, its builder checks.
    pub fn can_inject(self, plan: &Plan, region: &str) -> Result<(), String> {
        let name = self.name();
        let Some(spec) = plan.regions.get(region) else {
            let known: Vec<&str> = plan.regions.keys().map(String::as_str).collect();
            return Err(format!(
                "fault {name}: region '{region}' is not in the plan (its regions: {})",
                known.join(", ")
            ));
        };
        let service = spec.role != Role::Witness;
        let lab_plan = matches!((&plan.database, &plan.traffic), (DatabaseSpec::Postgres(_), TrafficSpec::Rfc2136(_)));
        let compute_in = |fits: &dyn Fn(&ComputeTarget) -> bool| {
            plan.compute.values().any(|c| c.targets.get(region).is_some_and(fits))
        };
        let refuse = |why: String| Err(format!("fault {name} in {region}: {why}"));
        match self.capabilities().needs {
            Needs::Nothing => Ok(()),
            Needs::LabRegion | Needs::LabMember if !lab_plan => refuse(format!(
                "only the lab injects it, and this is not a lab plan (database.kind {}, traffic.kind {}; a lab's plan is postgres with rfc2136: 'drover lab up' writes one)",
                plan.database.kind(),
                plan.traffic.kind()
            )),
            Needs::LabRegion => Ok(()),
            Needs::LabMember if !service => {
                refuse("the witness runs no database; kill and pause apply to a region with a database member".into())
            }
            Needs::LabMember => Ok(()),
            Needs::ServiceRegion if !service => refuse("the witness runs no service to break".into()),
            Needs::ServiceRegion => Ok(()),
            Needs::Route53HealthCheck => match &plan.traffic {
                TrafficSpec::Route53(t) => match t.targets.get(region) {
                    Some(target) if target.health_check_id.is_some() => Ok(()),
                    Some(_) => refuse(format!(
                        "the region's record set has no health check to invert: add traffic.targets.{region}.health_check_id"
                    )),
                    None => refuse(format!("traffic has no record set for the region (traffic.targets.{region})")),
                },
                other => refuse(format!("it needs traffic.kind route53, and the plan's is {}", other.kind())),
            },
            Needs::RdsMember => match &plan.database {
                DatabaseSpec::Rds(db) if db.members.contains_key(region) => Ok(()),
                DatabaseSpec::Rds(_) => refuse(format!("database.members has no RDS instance for {region}")),
                other => refuse(format!("it needs database.kind rds, and the plan's is {}", other.kind())),
            },
            Needs::AutoScalingGroup => match compute_in(&|t| matches!(t, ComputeTarget::AutoScalingGroup { .. })) {
                true => Ok(()),
                false => refuse(format!(
                    "no compute resource of kind autoscaling-group has a target in {region} (compute.<name>.regions.{region})"
                )),
            },
            Needs::AwsCompute => match compute_in(&|t| {
                matches!(t, ComputeTarget::AutoScalingGroup { .. } | ComputeTarget::EksNodegroup { .. })
            }) {
                true => Ok(()),
                false => refuse(format!(
                    "no compute resource of kind autoscaling-group or eks-nodegroup has a target in {region} (compute.<name>.regions.{region})"
                )),
            },
            Needs::KubernetesCompute => match compute_in(&|t| matches!(t, ComputeTarget::Kubernetes(_))) {
                true => Ok(()),
                false => refuse(format!(
                    "no compute resource of kind kubernetes has a target in {region} (compute.<name>.regions.{region})"
                )),
            },
        }
    }

    /// The plan's compute resources this kind scales to zero in `region`, by the API that
    /// resizes them; empty for kinds that scale nothing.
    pub fn compute_resources(self, plan: &Plan, region: &str) -> Vec<String> {
        let wanted = match self {
            FaultKind::AsgScaleToZero => ComputeApi::Aws,
            FaultKind::KubernetesScaleToZero => ComputeApi::Kubernetes,
            _ => return Vec::new(),
        };
        plan.compute
            .iter()
            .filter(|(_, c)| c.kind.api() == wanted && c.targets.contains_key(region))
            .map(|(name, _)| name.clone())
            .collect()
    }
}

impl FromStr for FaultKind {
    type Err = String;

    /// The one place fault names are read.
    fn from_str(s: &str) -> Result<FaultKind, String> {
        FaultKind::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            let names: Vec<&str> = FaultKind::ALL.iter().map(|k| k.name()).collect();
            format!("unknown fault '{s}': drover injects {}", names.join(", "))
        })
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<FaultKind> for String {
    fn from(k: FaultKind) -> String {
        k.name().to_owned()
    }
}

impl TryFrom<String> for FaultKind {
    type Error = String;
    fn try_from(s: String) -> Result<FaultKind, String> {
        s.parse()
    }
}

/// What an injector captured before injecting: everything its undo needs, so an undo after
/// a crash works from this alone. The driver journals it (JSON, stable field names) before
/// [`Injector::inject`]. `captured` is the injector's own record (each injector module
/// defines and reads its shape); it holds identifiers and settings, never secrets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultState {
    pub kind: FaultKind,
    /// The plan region the fault is in.
    pub region: String,
    /// What the fault will change, for people: `us-east-2/shop-db (available)`.
    pub targets: Vec<String>,
    pub captured: serde_json::Value,
}

impl FaultState {
    /// A state whose `captured` is `value`; `targets` describe it.
    pub fn new(kind: FaultKind, region: &str, targets: Vec<String>, value: &impl Serialize) -> FaultState {
        FaultState {
            kind,
            region: region.to_owned(),
            targets,
            captured: serde_json::to_value(value).unwrap_or(serde_json::Value::Null),
        }
    }

    /// `captured` read back as the injector's own record. A state of another kind, or one
    /// whose record does not read (a journal from another version), is a permanent error:
    /// undo then cannot know what to set back, and says so.
    pub fn read<T: serde::de::DeserializeOwned>(&self, kind: FaultKind) -> Result<T, ProviderError> {
        if self.kind != kind {
            return Err(ProviderError::permanent(format!(
                "fault {kind}: given the state of a {} fault; build the injector for the journaled kind",
                self.kind
            )));
        }
        serde_json::from_value(self.captured.clone()).map_err(|e| {
            ProviderError::permanent(format!(
                "fault {kind} in {}: the journaled state does not read ({e}); set back by hand: {}",
                self.region,
                self.targets.join(", ")
            ))
        })
    }
}

/// Whether a fault is in place, read back from the world.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FaultSeen {
    pub in_place: bool,
    /// What was read, for the journal and reports: `health check abc: inverted`.
    pub detail: String,
}

/// A drill's fault in the shape of a step. Every method is idempotent; only `capture`
/// reads the world without a state, and only before the fault.
#[async_trait]
pub trait Injector: Send + Sync {
    fn kind(&self) -> FaultKind;

    /// Reads what `inject` will change, as it is now. Journal the result before injecting.
    async fn capture(&self) -> Result<FaultState, ProviderError>;

    /// Injects the fault. Given the same state, a second call changes nothing more (a
    /// resumed drill may call it again).
    async fn inject(&self, state: &FaultState) -> Result<(), ProviderError>;

    /// Whether the fault is in place now.
    async fn observe(&self, state: &FaultState) -> Result<FaultSeen, ProviderError>;

    /// Sets back what `state` captured and says what it did. Fine twice, and fine for a
    /// fault never injected. Works from `state` alone: a new injector in a new process.
    async fn undo(&self, state: &FaultState) -> Result<String, ProviderError>;
}

/// `none`: a planned switchover drill breaks nothing.
pub struct NoFault {
    pub region: String,
}

#[async_trait]
impl Injector for NoFault {
    fn kind(&self) -> FaultKind {
        FaultKind::None
    }

    async fn capture(&self) -> Result<FaultState, ProviderError> {
        Ok(FaultState::new(FaultKind::None, &self.region, Vec::new(), &()))
    }

    async fn inject(&self, _state: &FaultState) -> Result<(), ProviderError> {
        Ok(())
    }

    /// Always in place: there is nothing to wait for.
    async fn observe(&self, _state: &FaultState) -> Result<FaultSeen, ProviderError> {
        Ok(FaultSeen { in_place: true, detail: "no fault: a planned switchover drill".into() })
    }

    async fn undo(&self, _state: &FaultState) -> Result<String, ProviderError> {
        Ok("nothing to set back".into())
    }
}

/// `asg-scale-to-zero` and `kubernetes-scale-to-zero`: every unit of the given compute
/// resources in the region to desired 0 and min 0 (max kept), through the plan's own
/// [`Compute`] provider; undo sets each captured unit back to its min, max and desired and
/// waits, within the resource's `ready_timeout`, until that many are up.
pub struct ScaleToZero {
    pub kind: FaultKind,
    pub region: String,
    /// The plan's compute resources to scale (`FaultKind::compute_resources`).
    pub resources: Vec<String>,
    pub compute: Arc<dyn Compute>,
}

/// One unit as captured: `ScaleToZero`'s record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct UnitSize {
    resource: String,
    /// The unit's name ([`crate::capacity::WHOLE`] for a group).
    unit: String,
    size: Size,
}

impl ScaleToZero {
    fn label(u: &UnitSize) -> String {
        match u.unit.as_str() {
            crate::capacity::WHOLE => u.resource.clone(),
            unit => format!("{} {unit}", u.resource),
        }
    }

    /// The captured units, by resource.
    fn by_resource(units: &[UnitSize]) -> BTreeMap<&str, Vec<&UnitSize>> {
        let mut out: BTreeMap<&str, Vec<&UnitSize>> = BTreeMap::new();
        for u in units {
            out.entry(u.resource.as_str()).or_default().push(u);
        }
        out
    }
}

#[async_trait]
impl Injector for ScaleToZero {
    fn kind(&self) -> FaultKind {
        self.kind
    }

    async fn capture(&self) -> Result<FaultState, ProviderError> {
        let mut units = Vec::new();
        for resource in &self.resources {
            for (unit, capacity) in self.compute.capacity(resource, &self.region).await? {
                units.push(UnitSize { resource: resource.clone(), unit, size: Size::of(&capacity) });
            }
        }
        let targets = units
            .iter()
            .map(|u| format!("{} (desired {}, min {}, max {})", Self::label(u), u.size.desired, u.size.min, u.size.max))
            .collect();
        Ok(FaultState::new(self.kind, &self.region, targets, &units))
    }

    async fn inject(&self, state: &FaultState) -> Result<(), ProviderError> {
        let units: Vec<UnitSize> = state.read(self.kind)?;
        for (resource, units) in Self::by_resource(&units) {
            let zero = units.iter().map(|u| (u.unit.clone(), Size { desired: 0, min: 0, max: u.size.max })).collect();
            self.compute.resize(resource, &state.region, &zero).await?;
        }
        Ok(())
    }

    async fn observe(&self, state: &FaultState) -> Result<FaultSeen, ProviderError> {
        let units: Vec<UnitSize> = state.read(self.kind)?;
        let mut running = Vec::new();
        for (resource, captured) in Self::by_resource(&units) {
            let now = self.compute.capacity(resource, &state.region).await?;
            for u in captured {
                if let Some(c) = now.get(&u.unit).filter(|c| c.desired > 0) {
                    running.push(format!("{} desired {}", Self::label(u), c.desired));
                }
            }
        }
        Ok(match running.is_empty() {
            true => FaultSeen { in_place: true, detail: format!("{} unit(s) at desired 0", units.len()) },
            false => FaultSeen { in_place: false, detail: format!("still running: {}", running.join(", ")) },
        })
    }

    async fn undo(&self, state: &FaultState) -> Result<String, ProviderError> {
        let units: Vec<UnitSize> = state.read(self.kind)?;
        for (resource, units) in Self::by_resource(&units) {
            let sizes = units.iter().map(|u| (u.unit.clone(), u.size)).collect();
            self.compute.resize(resource, &state.region, &sizes).await?;
        }
        Ok(format!("set back {}", state.targets.join(", ")))
    }
}
