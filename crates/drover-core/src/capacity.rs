//! Compute capacity, unit by unit: what a region runs as its provider reports it, and
//! the sizes the scale step asks for. Runs journal it (`Record::ScaledFrom`) and the
//! providers report it (`world::Compute`), so it sits below both.

use std::collections::BTreeMap;

use serde::Serialize;

/// How much of one unit of a compute resource one region runs, as its provider reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Capacity {
    /// What the region is asked to run.
    pub desired: u32,
    pub min: u32,
    pub max: u32,
    /// How many are up: InService instances, ready pods; for a node group, its desired
    /// size once it is ACTIVE again (EKS reports no count of ready nodes).
    pub ready: u32,
}

/// A compute resource in one region, unit by unit. A node group or an Auto Scaling group
/// is one unit, named [`WHOLE`]; Kubernetes workloads are one unit each, named
/// `kind/namespace/name` — the same name in every region, so each gets its share of its twin.
pub type Units = BTreeMap<String, Capacity>;

/// The name of the only unit of a resource that scales as a whole.
pub const WHOLE: &str = "";

/// A resize: the sizes the scale step asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Size {
    pub desired: u32,
    pub min: u32,
    pub max: u32,
}

impl Size {
    /// The new primary region's size for `percent` of the old primary's capacity, never
    /// below what the target already runs (a scale step only raises), rounded up, and
    /// with min and max widened just enough to hold it.
    pub fn share_of(primary: &Capacity, percent: u32, target: &Capacity) -> Size {
        let scale = |n: u32| (u64::from(n) * u64::from(percent)).div_ceil(100).min(u64::from(u32::MAX)) as u32;
        let desired = scale(primary.desired).max(target.desired);
        let min = scale(primary.min).max(target.min).min(desired);
        let max = target.max.max(desired);
        Size { desired, min, max }
    }

    /// The size a unit had: what undoing a scale step sets it back to.
    pub fn of(capacity: &Capacity) -> Size {
        Size { desired: capacity.desired, min: capacity.min, max: capacity.max }
    }
}
