//! A plan's backups: its backup section made real (the stores, the clusters, the Secrets
//! key), and backing a region's cluster up to every store. `drover backup` and `drover
//! restore` use it, and so does the daemon's backup schedule.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use drover_backup::backup::apply_retention;
use drover_backup::{BackupRequest, BackupStore, ClusterApi, Keep, OnProgress, SecretKey, create_backup};
use drover_core::plan::{BackupSpec, BackupStoreSpec, Plan};
use drover_core::secret::{SecretRef, SecretSource};
use serde::Serialize;
use time::OffsetDateTime;

use crate::app::error::Failure;
use crate::app::plan::{EnvSecrets, load_plan_with};

/// Resolves no secret: the backup commands read only the backup key, through `EnvSecrets`.
struct Unresolved;

impl SecretSource for Unresolved {
    fn resolve(&self, _: &SecretRef) -> Result<drover_core::secret::Secret, String> {
        Ok(drover_core::secret::Secret::new(""))
    }
}

/// A plan's backup section made real: its stores, its clusters and the Secrets key.
/// Only made for a plan that has the section.
pub struct Backups {
    pub plan: Plan,
}

impl Backups {
    /// The plan's backups, or None when it has no backup section.
    pub fn of(plan: &Plan) -> Option<Backups> {
        plan.backup.is_some().then(|| Backups { plan: plan.clone() })
    }

    fn spec(&self) -> &BackupSpec {
        self.plan.backup.as_ref().expect("Backups are made only for a plan with a backup section")
    }

    /// Reads the plan without resolving its secrets: whoever lists, verifies or restores
    /// backups in a disaster needs neither the database's nor the DNS's credentials. The
    /// backup key is read when it is used (`key`).
    pub fn open(path: &Path) -> Result<Backups, Failure> {
        let plan = load_plan_with(path, &Unresolved)?;
        if plan.backup.is_none() {
            return Err(Failure::input(format!(
                "{}: the plan has no backup section; add one naming a store per region, e.g. \
                 backup: {{ stores: {{ east: {{ url: s3://shop-backups-east/drover }}, ... }} }} (docs/plan.md#backup)",
                path.display()
            )));
        }
        Ok(Backups { plan })
    }

    pub fn known(&self, region: &str, flag: &str) -> Result<(), Failure> {
        if self.spec().stores.contains_key(region) {
            return Ok(());
        }
        let names: Vec<&str> = self.spec().stores.keys().map(String::as_str).collect();
        Err(Failure::input(format!(
            "{flag} {region}: the plan's backup section has no store for {region}; its regions are {}",
            names.join(", ")
        )))
    }

    /// The store in `region`: a local directory, or an S3 bucket in the region's AWS region.
    pub fn store(&self, region: &str) -> Result<BackupStore, Failure> {
        let bad = |e: drover_backup::Error| Failure::input(format!("backup.stores.{region}: {e}"));
        match &self.spec().stores[region] {
            BackupStoreSpec::Dir(dir) => BackupStore::local(region, dir).map_err(bad),
            BackupStoreSpec::S3 { bucket, prefix, endpoint, aws_region } => {
                let aws_region = aws_region.as_deref().unwrap_or_else(|| self.plan.aws_region(region));
                BackupStore::s3(region, bucket, Some(prefix), aws_region, endpoint.as_deref()).map_err(bad)
            }
        }
    }

    /// Every region's store, in region order.
    pub fn stores(&self) -> Result<Vec<BackupStore>, Failure> {
        self.spec().stores.keys().map(|region| self.store(region)).collect()
    }

    /// The stores `--region` names (one), or all of them.
    pub fn chosen_stores(&self, region: Option<&str>) -> Result<Vec<BackupStore>, Failure> {
        match region {
            Some(region) => {
                self.known(region, "--region")?;
                Ok(vec![self.store(region)?])
            }
            None => self.stores(),
        }
    }

    /// The cluster backed up in, and restored to, `region`.
    pub fn cluster(&self, region: &str) -> Result<Arc<dyn ClusterApi>, Failure> {
        let access = &self.spec().clusters[region];
        cluster_api(access, &format!("{region}'s cluster"))
    }

    /// The Secrets key, when the plan backs Secrets up; read from its reference now.
    pub fn key(&self) -> Result<Option<Arc<SecretKey>>, Failure> {
        let Some(reference) = &self.spec().key else { return Ok(None) };
        let field = match reference {
            SecretRef::Env(_) => "backup.key_env",
            SecretRef::File(_) => "backup.key_file",
        };
        let secret = EnvSecrets.resolve(reference).map_err(|e| Failure::input(format!("{field}: {e}")))?;
        SecretKey::from_material(secret.expose().as_bytes())
            .map(|key| Some(Arc::new(key)))
            .map_err(|e| Failure::input(format!("{field}: {e}")))
    }

    pub fn keep(&self) -> Keep {
        Keep { last: self.spec().keep_last as usize, daily: self.spec().keep_daily as usize }
    }

    pub fn schedule(&self) -> Option<Duration> {
        self.spec().schedule
    }

    /// Backs up `region`'s cluster to every store, then applies retention to each.
    pub async fn create(
        &self,
        region: &str,
        namespaces: Vec<String>,
        selector: Option<String>,
        progress: Option<OnProgress>,
    ) -> Result<CreateReport, Failure> {
        self.known(region, "--region")?;
        let (stores, cluster, key) = (self.stores()?, self.cluster(region)?, self.key()?);
        let request = BackupRequest {
            plan: self.plan.name.clone(),
            region: region.to_owned(),
            namespaces,
            selector,
            secrets: key,
            progress,
        };
        let report = create_backup(cluster.as_ref(), &stores, &request, OffsetDateTime::now_utc())
            .await
            .map_err(|e| Failure::failed(format!("backup of {region}: {e}")))?;
        // Retention runs in each store written, and only after a backup of the whole scope:
        // a backup of a few namespaces must not push full backups out of `keep`.
        let scoped = !request.namespaces.is_empty() || request.selector.is_some();
        let mut results = Vec::new();
        for store in &stores {
            let mut result = StoreWrite { store: store.name.clone(), ..StoreWrite::default() };
            if let Some((_, new)) = report.written.iter().find(|(name, _)| *name == store.name) {
                result.new_objects = Some(*new);
                if !scoped {
                    match apply_retention(store, self.keep()).await {
                        Ok(deleted) => result.deleted = deleted,
                        Err(e) => result.error = Some(format!("retention: {e}")),
                    }
                }
            } else if let Some((_, why)) = report.failed.iter().find(|(name, _)| *name == store.name) {
                result.error = Some(why.clone());
            }
            results.push(result);
        }
        let index = report.index;
        Ok(CreateReport {
            id: index.id.clone(),
            region: region.to_owned(),
            objects: index.objects.len(),
            bytes: stored_bytes(&index),
            secrets_encrypted: index.objects.iter().filter(|e| e.encrypted).count(),
            retention_applied: !scoped,
            skipped_groups: index.skipped_groups.clone(),
            stores: results,
        })
    }
}

/// Stored bytes of all of a backup's objects (compressed, encrypted for Secrets).
pub fn stored_bytes(index: &drover_backup::Index) -> u64 {
    index.objects.iter().map(|e| e.size).sum()
}

// The one provider gate outside drover-adapters' factory: `ClusterApi` is drover-backup's
// trait, and drover-adapters depends on drover-backup only with its kubernetes feature.
#[cfg(feature = "kubernetes")]
fn cluster_api(access: &drover_core::plan::ClusterAccess, name: &str) -> Result<Arc<dyn ClusterApi>, Failure> {
    Ok(Arc::new(drover_adapters::kubernetes::KubeCluster::new(access, name)))
}

#[cfg(not(feature = "kubernetes"))]
fn cluster_api(_: &drover_core::plan::ClusterAccess, name: &str) -> Result<Arc<dyn ClusterApi>, Failure> {
    Err(Failure::input(format!(
        "{name}: this drover was built without the kubernetes feature; rebuild with --features kubernetes"
    )))
}

/// What a backup did, store by store (`backup create -o json` prints it as it is).
#[derive(Serialize)]
pub struct CreateReport {
    pub id: String,
    pub region: String,
    pub objects: usize,
    /// Stored bytes of all the backup's objects (compressed, encrypted for Secrets).
    pub bytes: u64,
    pub secrets_encrypted: usize,
    /// False for a backup of some namespaces or a selector: retention is not applied after one.
    pub retention_applied: bool,
    /// API groups discovery could not read, with why: their objects are not in the backup.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped_groups: Vec<String>,
    pub stores: Vec<StoreWrite>,
}

#[derive(Default, Serialize)]
pub struct StoreWrite {
    pub store: String,
    /// Content objects this store did not hold yet (0 for an unchanged cluster); None: not written.
    pub new_objects: Option<usize>,
    /// Backups retention deleted afterwards.
    pub deleted: Vec<String>,
    /// Why the backup, or retention after it, failed in this store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl CreateReport {
    /// The stores where something failed, as one line for the exit message; None if none.
    pub fn problems(&self) -> Option<String> {
        let failed: Vec<String> = self
            .stores
            .iter()
            .filter_map(|s| s.error.as_ref().map(|e| format!("the {} store: {e}", s.store)))
            .collect();
        (!failed.is_empty()).then(|| failed.join("; "))
    }
}
