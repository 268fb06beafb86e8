//! The lab's faults (blackout, kill, pause, partition, loss) as drill injectors
//! (`drover_core::fault::Injector`): inject is `drover lab fault`, undo is `drover lab heal`
//! of the region, and observe reads the region's nftables tables and its database's
//! processes back. The lab sits above the adapters, so it builds these itself; the
//! adapters' `faults::injector_for` builds every other kind.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use drover_core::error::ProviderError;
use drover_core::fault::{FaultKind as Kind, FaultSeen, FaultState, Injector};

use crate::fault::{Fault, FaultKind};
use crate::layout;
use crate::state::Lab;
use crate::{LabError, nft, sys};

/// One lab fault in the lab at `dir`.
pub struct LabInjector {
    dir: PathBuf,
    fault: Fault,
}

/// What is journaled: the fault as given, which is all `lab heal` needs.
#[derive(serde::Serialize, serde::Deserialize)]
struct Captured {
    region: String,
    from: Option<String>,
    percent: u8,
}

/// The lab's own kind for a drill's; None for a kind the lab does not inject.
pub fn lab_kind(kind: Kind) -> Option<FaultKind> {
    FaultKind::ALL.into_iter().find(|k| k.as_str() == kind.name())
}

/// The injector of `kind` in `region` of the lab at `dir` (`from`: a partition's other
/// region; `percent`: loss's share). Refused, nothing done, for a kind or region the lab
/// does not have, or when no lab runs at `dir`.
pub fn injector(
    dir: &Path,
    kind: Kind,
    region: &str,
    from: Option<&str>,
    percent: Option<u8>,
) -> Result<LabInjector, LabError> {
    let Some(lab_kind) = lab_kind(kind) else {
        return Err(LabError::refused(format!(
            "fault {kind}: the lab injects blackout, partition, kill, pause and loss"
        )));
    };
    let mut fault = Fault::parse(lab_kind.as_str(), region, from).map_err(LabError::refused)?;
    if let Some(percent) = percent {
        fault = fault.with_percent(percent).map_err(LabError::refused)?;
    }
    Lab::load(dir)?;
    Ok(LabInjector { dir: dir.to_owned(), fault })
}

fn failed(e: LabError) -> ProviderError {
    ProviderError::permanent(e.to_string())
}

impl LabInjector {
    /// The fault as journaled, on the lab's own terms.
    fn fault(&self, state: &FaultState) -> Result<Fault, ProviderError> {
        let c: Captured = state.read(self.kind())?;
        Ok(Fault { kind: self.fault.kind, region: c.region, from: c.from, percent: c.percent })
    }

    /// Runs `work` on the lab (blocking: processes, signals, a restart's wait) off the runtime.
    async fn on_lab<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Lab) -> Result<T, LabError> + Send + 'static,
    ) -> Result<T, ProviderError> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || work(&Lab::load(&dir)?))
            .await
            .map_err(|e| ProviderError::permanent(format!("lab: {e}")))?
            .map_err(failed)
    }
}

/// Whether `fault` is in place in the lab, and what was seen.
fn seen(lab: &Lab, fault: &Fault) -> Result<FaultSeen, LabError> {
    let spec = layout::region(&fault.region)?;
    let ns = spec.namespace();
    let table = |name: &str| -> Result<FaultSeen, LabError> {
        let in_place = nft::tables(&ns)?.iter().any(|t| t == name);
        let detail =
            format!("{}: {} {}", fault.region, nft::describe(name), if in_place { "in place" } else { "absent" });
        Ok(FaultSeen { in_place, detail })
    };
    match fault.kind {
        FaultKind::Blackout => table(nft::BLACKOUT_TABLE),
        FaultKind::Loss => table(nft::LOSS_TABLE),
        FaultKind::Partition => table(&nft::partition_table(fault.from.as_deref().unwrap_or_default())),
        FaultKind::Kill | FaultKind::Pause => {
            let pid = sys::postmaster(&lab.dir.pgdata(&fault.region));
            let state = pid.and_then(sys::process_state);
            let in_place = match fault.kind {
                FaultKind::Kill => pid.is_none(),
                _ => state == Some('T'),
            };
            let detail = match pid {
                None => format!("{} database: not running", fault.region),
                Some(pid) => format!("{} database: postmaster {pid} in state {}", fault.region, state.unwrap_or('?')),
            };
            Ok(FaultSeen { in_place, detail })
        }
    }
}

#[async_trait]
impl Injector for LabInjector {
    fn kind(&self) -> Kind {
        match self.fault.kind {
            FaultKind::Blackout => Kind::Blackout,
            FaultKind::Partition => Kind::Partition,
            FaultKind::Kill => Kind::Kill,
            FaultKind::Pause => Kind::Pause,
            FaultKind::Loss => Kind::Loss,
        }
    }

    async fn capture(&self) -> Result<FaultState, ProviderError> {
        let f = &self.fault;
        let captured = Captured { region: f.region.clone(), from: f.from.clone(), percent: f.percent };
        Ok(FaultState::new(self.kind(), &f.region, vec![f.to_string()], &captured))
    }

    /// A killed database is not killed again (there is nothing to kill); the rest apply
    /// the same tables or signals again, which changes nothing.
    async fn inject(&self, state: &FaultState) -> Result<(), ProviderError> {
        let fault = self.fault(state)?;
        self.on_lab(move |lab| {
            if fault.kind == FaultKind::Kill && seen(lab, &fault)?.in_place {
                return Ok(());
            }
            lab.fault(&fault)
        })
        .await
    }

    async fn observe(&self, state: &FaultState) -> Result<FaultSeen, ProviderError> {
        let fault = self.fault(state)?;
        self.on_lab(move |lab| seen(lab, &fault)).await
    }

    /// `lab heal` of the region: it lifts every fault there (and partitions other regions
    /// hold against it), and starts a killed database again.
    async fn undo(&self, state: &FaultState) -> Result<String, ProviderError> {
        let fault = self.fault(state)?;
        self.on_lab(move |lab| lab.heal(&fault.region)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drills_lab_kinds_are_the_labs_kinds() {
        let drill: Vec<Kind> = Kind::ALL.into_iter().filter(|k| k.is_lab()).collect();
        assert_eq!(drill.len(), FaultKind::ALL.len());
        for kind in drill {
            let lab = lab_kind(kind).unwrap_or_else(|| panic!("{kind} is not a lab kind"));
            let injector =
                LabInjector { dir: PathBuf::new(), fault: Fault::parse(lab.as_str(), "east", None).unwrap() };
            assert_eq!(injector.kind(), kind);
        }
        assert!(lab_kind(Kind::RdsStop).is_none());
    }

    #[tokio::test]
    async fn the_journaled_state_holds_the_fault_as_given() {
        let injector = LabInjector {
            dir: PathBuf::new(),
            fault: Fault::parse("loss", "east", None).unwrap().with_percent(20).unwrap(),
        };
        let state = injector.capture().await.unwrap();
        assert_eq!(state.targets, ["loss:east (20%)"]);
        let state: FaultState = serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
        assert_eq!(injector.fault(&state).unwrap(), injector.fault);
        let partition = LabInjector { dir: PathBuf::new(), fault: Fault::parse("partition", "east", None).unwrap() };
        let state = partition.capture().await.unwrap();
        assert_eq!(partition.fault(&state).unwrap().from.as_deref(), Some("west"));
    }

    #[test]
    fn no_lab_or_a_kind_the_lab_lacks_is_refused_before_anything_is_done() {
        let dir = std::env::temp_dir().join("drover-no-lab-here");
        let err = injector(&dir, Kind::Blackout, "east", None, None).err().unwrap();
        assert!(matches!(err, LabError::Refused(_)), "{err}");
        let err = injector(&dir, Kind::AsgSuspend, "east", None, None).err().unwrap();
        assert!(err.to_string().contains("the lab injects blackout"), "{err}");
        let err = injector(&dir, Kind::Kill, "witness", None, None).err().unwrap();
        assert!(err.to_string().contains("runs no database"), "{err}");
        let err = injector(&dir, Kind::Blackout, "east", None, Some(5)).err().unwrap();
        assert!(err.to_string().contains("loss only"), "{err}");
    }
}
