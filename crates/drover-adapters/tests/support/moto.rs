//! A real moto server (PyPI `moto[server]`, installed by scripts/setup.sh into
//! /opt/drover-moto) on a free loopback port, one per test binary or test;
//! killed on drop. AWS clients reach it through `AWS_ENDPOINT_URL` and dummy
//! credentials, as a user would point drover anywhere.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use drover_adapters::aws::route53::sdk;
use sdk::config::{BehaviorVersion, Credentials, Region};

/// Dummy credentials: moto accepts any; they must never appear in drover's output.
pub const ACCESS_KEY_ID: &str = "AKIAMOTOTESTKEY00001";
pub const SECRET_ACCESS_KEY: &str = "moto-test-secret-do-not-print-0000000001";
pub const REGION: &str = "us-east-1";

pub struct Moto {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

/// `DROVER_MOTO_SERVER`, or the venv scripts/setup.sh makes.
fn server() -> PathBuf {
    let path = std::env::var_os("DROVER_MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/drover-moto/bin/moto_server"));
    assert!(
        path.exists(),
        "{} not found: the AWS tests need a moto server; run scripts/setup.sh (it installs moto[server] into /opt/drover-moto), or set DROVER_MOTO_SERVER",
        path.display()
    );
    path
}

/// Three places where moto 5.2.5 differs from AWS, patched so tests see what AWS does;
/// nothing else of moto is changed:
/// - PromoteReadReplica leaves `ReadReplicaSourceDBInstanceIdentifier` set on the promoted
///   instance; real RDS clears it (the instance stands alone).
/// - GetHealthCheckStatus reports success whatever the check; an `Inverted` health check
///   of a healthy endpoint is reported failing by Route 53 (what a drill's
///   `route53-health-check` fault relies on).
/// - ChangeResourceRecordSets refuses a CREATE equal to one in its change history whenever
///   the zone holds any set at or after the name, ignoring set identifiers and the DELETEs
///   before it in the same batch. Route 53 refuses a CREATE only of a set (name, type, set
///   identifier) that exists once the batch's earlier changes apply — which is what lets a
///   switch DELETE a set as listed and CREATE its new version in one batch.
const PATCH: &str = "
import sys
from moto.rds import models
_promote = models.RDSBackend.promote_read_replica
def promote(self, db_kwargs):
    db = _promote(self, db_kwargs)
    db.source_db_instance_identifier = None
    return db
models.RDSBackend.promote_read_replica = promote
from moto.route53 import models as r53
class History(r53.ChangeList):
    def __contains__(self, change):
        return False
_change = r53.Route53Backend.change_resource_record_sets
def change(self, zoneid, change_list):
    zone = self.get_hosted_zone(zoneid)
    key = lambda s: (s['Name'].rstrip('.').lower(), s['Type'], s.get('SetIdentifier'))
    present = {(r.name.rstrip('.').lower(), r.type, r.set_identifier) for r in zone.rrsets}
    for c in change_list:
        k = key(c['ResourceRecordSet'])
        if c['Action'] == 'CREATE' and k in present:
            raise r53.ResourceRecordAlreadyExists(name=k[0] + '.', _type=k[1])
        if c['Action'] == 'DELETE':
            present.discard(k)
        else:
            present.add(k)
    if not isinstance(zone.rr_changes, History):
        zone.rr_changes = History(zone.rr_changes)
    return _change(self, zoneid, change_list)
r53.Route53Backend.change_resource_record_sets = change
from moto.route53 import responses as r53r
_status = r53r.Route53.get_health_check_status
def status(self):
    out = _status(self)
    checked = self.backend.get_health_check(self._get_param('HealthCheckId'))
    if getattr(checked, 'inverted', False):
        for o in out.result['HealthCheckObservations']:
            o['StatusReport']['Status'] = 'Failure: the health check is inverted'
    return out
r53r.Route53.get_health_check_status = status
from moto.server import main
sys.exit(main(sys.argv[1:]))
";

/// moto_server's own Python (beside it in the venv), to run it with `PATCH`.
fn server_command() -> Command {
    let server = server();
    let python = server.with_file_name("python");
    if python.exists() {
        let mut cmd = Command::new(python);
        cmd.args(["-c", PATCH]);
        cmd
    } else {
        Command::new(server)
    }
}

impl Moto {
    pub fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let child = server_command()
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("moto.log")).unwrap())
            .spawn()
            .expect("start moto_server (run scripts/setup.sh)");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not listen within 60s");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, port, _dir: dir }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment that points drover (the AWS SDK's standard chain) at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.into()),
            ("AWS_REGION", REGION.into()),
            // No profile files or instance metadata: only the environment above.
            ("AWS_CONFIG_FILE", "/nonexistent".into()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    /// A Route 53 client for setting up and reading back zones (not through the environment,
    /// which tests running in parallel share).
    pub fn route53(&self) -> sdk::Client {
        let config = sdk::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(self.endpoint())
            .credentials_provider(Credentials::new(ACCESS_KEY_ID, SECRET_ACCESS_KEY, None, None, "moto"))
            .http_client(drover_adapters::aws::https_client())
            .build();
        sdk::Client::from_conf(config)
    }
}

impl Moto {
    /// The SDK configuration drover's `AwsConfig` would load from `env()`, built directly
    /// (the environment is shared by tests running in parallel).
    pub fn sdk_config(&self) -> drover_adapters::aws::SdkConfig {
        drover_adapters::aws::SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(self.endpoint())
            .credentials_provider(sdk::config::SharedCredentialsProvider::new(Credentials::new(
                ACCESS_KEY_ID,
                SECRET_ACCESS_KEY,
                None,
                None,
                "moto",
            )))
            .http_client(drover_adapters::aws::https_client())
            .build()
    }

    /// An RDS client for `region`, for setting up and reading back instances.
    pub fn rds(&self, region: &str) -> drover_adapters::aws::rds::sdk::Client {
        use drover_adapters::aws::rds::sdk as rds;
        let config = rds::config::Builder::from(&self.sdk_config()).region(Region::new(region.to_owned())).build();
        rds::Client::from_conf(config)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One record set as moto holds it, for comparing what drover left behind.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SetSeen {
    pub set_identifier: String,
    /// The values, comma-separated.
    pub values: String,
    pub failover: Option<String>,
    pub weight: Option<i64>,
    pub health_check_id: Option<String>,
}

/// A new hosted zone named `name`; its id without `/hostedzone/`.
pub async fn hosted_zone(client: &sdk::Client, name: &str) -> String {
    let out = client
        .create_hosted_zone()
        .name(name)
        .caller_reference(format!("drover-test-{name}"))
        .send()
        .await
        .expect("create hosted zone in moto");
    out.hosted_zone().unwrap().id().trim_start_matches("/hostedzone/").to_owned()
}

/// A new HTTP health check of `ip`; its id.
pub async fn health_check(client: &sdk::Client, ip: &str) -> String {
    use sdk::types::{HealthCheckConfig, HealthCheckType};
    let config = HealthCheckConfig::builder().ip_address(ip).port(80).r#type(HealthCheckType::Http).build().unwrap();
    let out = client
        .create_health_check()
        .caller_reference(format!("drover-test-{ip}"))
        .health_check_config(config)
        .send()
        .await
        .expect("create health check in moto");
    out.health_check().unwrap().id().to_owned()
}

/// An A record set of `name` holding `value`, with a TTL of 60 s, to finish with routing attributes.
pub fn a_set(name: &str, value: &str, set_identifier: &str) -> sdk::types::builders::ResourceRecordSetBuilder {
    use sdk::types::{ResourceRecord, ResourceRecordSet, RrType};
    ResourceRecordSet::builder()
        .name(name)
        .r#type(RrType::A)
        .ttl(60)
        .set_identifier(set_identifier)
        .resource_records(ResourceRecord::builder().value(value).build().unwrap())
}

/// Creates the record sets in one batch.
pub async fn create_sets(client: &sdk::Client, zone: &str, sets: Vec<sdk::types::ResourceRecordSet>) {
    use sdk::types::{Change, ChangeAction, ChangeBatch};
    let changes = sets
        .into_iter()
        .map(|s| Change::builder().action(ChangeAction::Create).resource_record_set(s).build().unwrap())
        .collect();
    client
        .change_resource_record_sets()
        .hosted_zone_id(zone)
        .change_batch(ChangeBatch::builder().set_changes(Some(changes)).build().unwrap())
        .send()
        .await
        .expect("create record sets in moto");
}

/// `record`'s sets (sorted by set identifier) and the values of its `_drover-epoch` TXT.
pub async fn read_back(client: &sdk::Client, zone: &str, record: &str) -> (Vec<SetSeen>, Vec<String>) {
    let out = client.list_resource_record_sets().hosted_zone_id(zone).send().await.unwrap();
    let (mut sets, mut txt) = (Vec::new(), Vec::new());
    for s in out.resource_record_sets() {
        let values: Vec<&str> = s.resource_records().iter().map(|r| r.value()).collect();
        if s.name() == format!("_drover-epoch.{record}") {
            txt.extend(values.iter().map(|v| v.to_string()));
        } else if s.name() == record {
            sets.push(SetSeen {
                set_identifier: s.set_identifier().unwrap_or_default().to_owned(),
                values: values.join(","),
                failover: s.failover().map(|f| f.as_str().to_owned()),
                weight: s.weight(),
                health_check_id: s.health_check_id().map(str::to_owned),
            });
        }
    }
    sets.sort();
    (sets, txt)
}

/// Each set's weight, in set identifier order.
pub fn weights(sets: &[SetSeen]) -> Vec<Option<i64>> {
    sets.iter().map(|s| s.weight).collect()
}

/// Each set's (set identifier, value, failover role), in set identifier order.
pub fn roles(sets: &[SetSeen]) -> Vec<(&str, &str, Option<&str>)> {
    sets.iter().map(|s| (s.set_identifier.as_str(), s.values.as_str(), s.failover.as_deref())).collect()
}

/// The primary `shop-db` (parameter group `group`) in us-east-2 and its replica
/// `shop-db-replica` (group `shop-replica-pg`) in us-west-1.
pub async fn seed_rds(
    east: &drover_adapters::aws::rds::sdk::Client,
    west: &drover_adapters::aws::rds::sdk::Client,
    group: &str,
) {
    if !group.starts_with("default.") {
        east.create_db_parameter_group()
            .db_parameter_group_name(group)
            .db_parameter_group_family("postgres15")
            .description("shop primary")
            .send()
            .await
            .expect("create parameter group");
    }
    west.create_db_parameter_group()
        .db_parameter_group_name("shop-replica-pg")
        .db_parameter_group_family("postgres15")
        .description("shop replica")
        .send()
        .await
        .expect("create parameter group");
    let primary = east
        .create_db_instance()
        .db_instance_identifier("shop-db")
        .engine("postgres")
        .db_instance_class("db.t3.micro")
        .allocated_storage(20)
        .master_username("shop")
        .master_user_password("not-a-real-password")
        .db_parameter_group_name(group)
        .send()
        .await
        .expect("create primary instance");
    let arn = primary.db_instance().unwrap().db_instance_arn().unwrap().to_owned();
    west.create_db_instance_read_replica()
        .db_instance_identifier("shop-db-replica")
        .source_db_instance_identifier(arn)
        .db_parameter_group_name("shop-replica-pg")
        .send()
        .await
        .expect("create cross-region read replica");
}

/// An EKS client for `region` (for setting up clusters and node groups, and reading them back).
pub fn eks(moto: &Moto, region: &str) -> drover_adapters::aws::eks_sdk::Client {
    use drover_adapters::aws::eks_sdk as eks;
    eks::Client::from_conf(
        eks::config::Builder::from(&moto.sdk_config()).region(Region::new(region.to_owned())).build(),
    )
}

/// An Auto Scaling client for `region`.
pub fn autoscaling(moto: &Moto, region: &str) -> drover_adapters::aws::autoscaling_sdk::Client {
    use drover_adapters::aws::autoscaling_sdk as asg;
    asg::Client::from_conf(
        asg::config::Builder::from(&moto.sdk_config()).region(Region::new(region.to_owned())).build(),
    )
}

/// An EKS cluster with one managed node group of `desired` nodes (min 1, max 10).
pub async fn nodegroup(client: &drover_adapters::aws::eks_sdk::Client, cluster: &str, group: &str, desired: i32) {
    use drover_adapters::aws::eks_sdk::types::{NodegroupScalingConfig, VpcConfigRequest};
    client
        .create_cluster()
        .name(cluster)
        .role_arn("arn:aws:iam::123456789012:role/eks")
        .resources_vpc_config(VpcConfigRequest::builder().subnet_ids("subnet-1").build())
        .send()
        .await
        .expect("create EKS cluster in moto");
    client
        .create_nodegroup()
        .cluster_name(cluster)
        .nodegroup_name(group)
        .node_role("arn:aws:iam::123456789012:role/nodes")
        .subnets("subnet-1")
        .scaling_config(NodegroupScalingConfig::builder().min_size(1).max_size(10).desired_size(desired).build())
        .send()
        .await
        .expect("create node group in moto");
}

/// A node group's (desired, min, max) as moto holds it.
pub async fn nodegroup_size(
    client: &drover_adapters::aws::eks_sdk::Client,
    cluster: &str,
    group: &str,
) -> (i32, i32, i32) {
    let out = client.describe_nodegroup().cluster_name(cluster).nodegroup_name(group).send().await.unwrap();
    let s = out.nodegroup().unwrap().scaling_config().unwrap();
    (s.desired_size().unwrap(), s.min_size().unwrap(), s.max_size().unwrap())
}

/// An Auto Scaling group of `desired` instances (min 1, max 10) in `zone`.
pub async fn auto_scaling_group(
    client: &drover_adapters::aws::autoscaling_sdk::Client,
    name: &str,
    zone: &str,
    desired: i32,
) {
    client
        .create_launch_configuration()
        .launch_configuration_name(format!("{name}-lc"))
        .image_id("ami-12c6146b")
        .instance_type("t3.micro")
        .send()
        .await
        .expect("create launch configuration in moto");
    client
        .create_auto_scaling_group()
        .auto_scaling_group_name(name)
        .launch_configuration_name(format!("{name}-lc"))
        .availability_zones(zone)
        .min_size(1)
        .max_size(10)
        .desired_capacity(desired)
        .send()
        .await
        .expect("create Auto Scaling group in moto");
}

/// A group's (desired, InService instances) as moto holds it.
pub async fn group_size(client: &drover_adapters::aws::autoscaling_sdk::Client, name: &str) -> (i32, usize) {
    let out = client.describe_auto_scaling_groups().auto_scaling_group_names(name).send().await.unwrap();
    let g = &out.auto_scaling_groups()[0];
    let in_service =
        g.instances().iter().filter(|i| i.lifecycle_state().is_some_and(|s| s.as_str() == "InService")).count();
    (g.desired_capacity().unwrap(), in_service)
}
