//! The `kubernetes` compute kind against scripted API servers (kube-rs's `tower_test` pair):
//! each scenario asserts every request drover makes — method, path, patch body — and answers
//! as the API server would. No API server runs here; docs/kubernetes.md says what that leaves.
#![cfg(feature = "kubernetes")]

#[path = "support/silent.rs"]
mod silent;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_adapters::kubernetes::{KubeTimeouts, KubernetesCompute};
use drover_core::engine::plan_run;
use drover_core::plan::{ClusterAccess, ComputeKind, ComputeSpec, ComputeTarget, DatabaseKind, KubernetesTarget, Plan};
use drover_core::run::{RunKind, RunState, StepState};
use drover_core::testing::scenarios::two_region_plan;
use drover_core::testing::{FakeWorld, MemoryJournal};
use drover_core::world::{Capacity, Compute, Size};
use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/shop/deployments";
const STATEFULSETS: &str = "/apis/apps/v1/namespaces/shop/statefulsets";
const AUTOSCALERS: &str = "/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers";

/// A plan whose compute `apps` is the `shop` namespace's `app=shop` workloads in east and west.
fn plan(ready_timeout: Duration) -> Plan {
    let mut plan = two_region_plan();
    let target = || {
        ComputeTarget::Kubernetes(KubernetesTarget {
            cluster: ClusterAccess::InCluster,
            namespace: "shop".into(),
            selector: Some("app=shop".into()),
        })
    };
    plan.compute.insert(
        "apps".into(),
        ComputeSpec {
            name: "apps".into(),
            kind: ComputeKind::Kubernetes,
            capacity_percent: 100,
            ready_timeout,
            targets: [("east".into(), target()), ("west".into(), target())].into(),
        },
    );
    plan.runbooks = DatabaseKind::Postgres.default_runbooks(true);
    plan
}

/// A client whose API server is the returned handle.
fn scripted() -> (Client, ApiServer) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), ApiServer(handle))
}

fn mk_deployment(name: &str, replicas: u32, ready: u32) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": name, "namespace": "shop", "labels": { "app": "shop" } },
        "spec": { "replicas": replicas, "selector": { "matchLabels": { "app": name } }, "template": {} },
        "status": { "replicas": replicas, "readyReplicas": ready }
    })
}

fn mk_statefulset(name: &str, replicas: u32, ready: u32) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": { "name": name, "namespace": "shop", "labels": { "app": "shop" } },
        "spec": { "replicas": replicas, "serviceName": name, "selector": { "matchLabels": { "app": name } }, "template": {} },
        "status": { "replicas": replicas, "readyReplicas": ready }
    })
}

fn mk_autoscaler(name: &str, kind: &str, target: &str, min: u32, max: u32) -> Value {
    json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": { "name": name, "namespace": "shop" },
        "spec": {
            "scaleTargetRef": { "apiVersion": "apps/v1", "kind": kind, "name": target },
            "minReplicas": min, "maxReplicas": max
        }
    })
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({ "apiVersion": "v1", "kind": format!("{kind}List"), "metadata": { "resourceVersion": "1" }, "items": items })
}

fn reply(status: u16, body: &Value) -> Response<Body> {
    Response::builder().status(status).body(Body::from(serde_json::to_vec(body).unwrap())).unwrap()
}

/// Plays the API server: each `expect` takes the next request drover makes.
struct ApiServer(Handle);

impl ApiServer {
    /// Asserts the next request is `method path` and answers `answer` (200); returns its body.
    async fn expect(&mut self, method: &str, path: &str, answer: Value) -> Value {
        // A generous bound: it only catches a call the code never makes.
        let next = tokio::time::timeout(Duration::from_secs(5), self.0.next_request()).await;
        let (request, respond) = next.unwrap_or_else(|_| panic!("no request; expected {method} {path}")).unwrap();
        assert_eq!((request.method().as_str(), request.uri().path()), (method, path));
        let query = request.uri().query().unwrap_or_default().to_owned();
        if path != AUTOSCALERS && method == "GET" {
            assert!(query.contains("labelSelector=app%3Dshop"), "{query}");
        }
        if method == "PATCH" {
            let kind = request.headers()["content-type"].to_str().unwrap().to_owned();
            assert_eq!(kind, "application/merge-patch+json");
        }
        let body = request.into_body().collect_bytes().await.unwrap();
        respond.send_response(reply(200, &answer));
        if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap() }
    }

    /// Asserts the next request merge-patches `path` with `patch`, and answers `answer`.
    async fn expect_patch(&mut self, path: &str, patch: Value, answer: Value) {
        assert_eq!(self.expect("PATCH", path, answer).await, patch, "PATCH {path}");
    }

    /// The three lists one reading of the workloads makes.
    async fn lists(&mut self, deployments: Vec<Value>, statefulsets: Vec<Value>, autoscalers: Vec<Value>) {
        self.expect("GET", DEPLOYMENTS, list("Deployment", deployments)).await;
        self.expect("GET", STATEFULSETS, list("StatefulSet", statefulsets)).await;
        self.expect("GET", AUTOSCALERS, list("HorizontalPodAutoscaler", autoscalers)).await;
    }
}

/// Runs `script` as the API server while `drover` runs, and fails if either fails.
async fn scenario<T>(script: impl Future<Output = ()> + Send + 'static, drover: impl Future<Output = T>) -> T {
    let server = tokio::spawn(script);
    let out = drover.await;
    tokio::time::timeout(Duration::from_secs(5), server).await.expect("the script did not finish").unwrap();
    out
}

fn sizes(units: &[(&str, u32, u32, u32)]) -> BTreeMap<String, Size> {
    units.iter().map(|&(u, desired, min, max)| (u.to_owned(), Size { desired, min, max })).collect()
}

#[tokio::test]
async fn capacity_reads_each_selected_workload_with_its_autoscalers_bounds() {
    let (client, mut server) = scripted();
    let compute = KubernetesCompute::new(&plan(Duration::from_secs(60))).with_client("apps", "east", client);
    let units = scenario(
        async move {
            server
                .lists(
                    vec![mk_deployment("api", 4, 4)],
                    vec![mk_statefulset("queue", 3, 2)],
                    vec![mk_autoscaler("api", "Deployment", "api", 2, 10)],
                )
                .await;
        },
        compute.capacity("apps", "east"),
    )
    .await
    .unwrap();
    assert_eq!(
        units,
        [
            ("deployment/api".to_owned(), Capacity { desired: 4, min: 2, max: 10, ready: 4 }),
            // No autoscaler: its replica count is all there is.
            ("statefulset/queue".to_owned(), Capacity { desired: 3, min: 3, max: 3, ready: 2 }),
        ]
        .into()
    );
}

#[tokio::test]
async fn raising_lifts_the_autoscalers_floor_then_the_replicas_and_waits_until_ready() {
    let (client, mut server) = scripted();
    let compute = KubernetesCompute::new(&plan(Duration::from_secs(60)))
        .with_client("apps", "west", client)
        .poll_every(Duration::from_millis(1));
    let want = sizes(&[("deployment/api", 4, 2, 10), ("statefulset/queue", 3, 3, 3)]);
    scenario(
        async move {
            let hpa = || vec![mk_autoscaler("api-hpa", "Deployment", "api", 1, 10)];
            server.lists(vec![mk_deployment("api", 1, 1)], vec![mk_statefulset("queue", 1, 1)], hpa()).await;
            // The floor first, at the new replica count: the autoscaler would otherwise take them back.
            server
                .expect_patch(
                    &format!("{AUTOSCALERS}/api-hpa"),
                    json!({ "spec": { "minReplicas": 4, "maxReplicas": 10 } }),
                    mk_autoscaler("api-hpa", "Deployment", "api", 4, 10),
                )
                .await;
            server
                .expect_patch(
                    &format!("{DEPLOYMENTS}/api"),
                    json!({ "spec": { "replicas": 4 } }),
                    mk_deployment("api", 4, 1),
                )
                .await;
            server
                .expect_patch(
                    &format!("{STATEFULSETS}/queue"),
                    json!({ "spec": { "replicas": 3 } }),
                    mk_statefulset("queue", 3, 1),
                )
                .await;
            // Pods start: looked at until every workload is ready.
            server.lists(vec![mk_deployment("api", 4, 2)], vec![mk_statefulset("queue", 3, 3)], vec![]).await;
            server.lists(vec![mk_deployment("api", 4, 4)], vec![mk_statefulset("queue", 3, 3)], vec![]).await;
        },
        compute.resize("apps", "west", &want),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn undo_sets_the_autoscalers_floor_and_the_replicas_back_exactly() {
    let (client, mut server) = scripted();
    let compute = KubernetesCompute::new(&plan(Duration::from_secs(60))).with_client("apps", "west", client);
    let before = sizes(&[("deployment/api", 1, 1, 10)]);
    scenario(
        async move {
            let hpa = vec![mk_autoscaler("api-hpa", "Deployment", "api", 4, 10)];
            server.lists(vec![mk_deployment("api", 4, 4)], vec![], hpa).await;
            server
                .expect_patch(
                    &format!("{AUTOSCALERS}/api-hpa"),
                    json!({ "spec": { "minReplicas": 1, "maxReplicas": 10 } }),
                    mk_autoscaler("api-hpa", "Deployment", "api", 1, 10),
                )
                .await;
            server
                .expect_patch(
                    &format!("{DEPLOYMENTS}/api"),
                    json!({ "spec": { "replicas": 1 } }),
                    mk_deployment("api", 1, 4),
                )
                .await;
            server.lists(vec![mk_deployment("api", 1, 1)], vec![], vec![]).await;
        },
        compute.resize("apps", "west", &before),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn workloads_not_ready_in_time_are_named_with_their_counts() {
    let (client, server) = scripted();
    let compute = KubernetesCompute::new(&plan(Duration::from_millis(50)))
        .with_client("apps", "west", client)
        .poll_every(Duration::from_millis(5));
    let want = sizes(&[("deployment/api", 3, 3, 3), ("statefulset/queue", 2, 2, 2)]);
    // The API server accepts every patch; api never gets past one ready pod, queue is fine.
    let stand_in = async move {
        let mut server = server;
        server.lists(vec![mk_deployment("api", 1, 1)], vec![mk_statefulset("queue", 1, 1)], vec![]).await;
        server
            .expect_patch(
                &format!("{DEPLOYMENTS}/api"),
                json!({ "spec": { "replicas": 3 } }),
                mk_deployment("api", 3, 1),
            )
            .await;
        server
            .expect_patch(
                &format!("{STATEFULSETS}/queue"),
                json!({ "spec": { "replicas": 2 } }),
                mk_statefulset("queue", 2, 1),
            )
            .await;
        let mut server = server.0;
        while let Some((request, respond)) = server.next_request().await {
            let answer = match request.uri().path() {
                DEPLOYMENTS => list("Deployment", vec![mk_deployment("api", 3, 1)]),
                STATEFULSETS => list("StatefulSet", vec![mk_statefulset("queue", 2, 2)]),
                _ => list("HorizontalPodAutoscaler", vec![]),
            };
            respond.send_response(reply(200, &answer));
        }
    };
    let server = tokio::spawn(stand_in);
    let err = compute.resize("apps", "west", &want).await.unwrap_err();
    drop(compute);
    server.await.unwrap();
    assert!(!err.retryable());
    assert_eq!(
        err.message,
        "apps in west: not ready within ready_timeout 50ms: deployment/api 1/3 ready — see 'kubectl -n shop get pods' and their events, then resume"
    );
}

#[tokio::test]
async fn a_denied_list_names_the_rbac_drover_needs() {
    let (client, mut server) = scripted();
    let compute = KubernetesCompute::new(&plan(Duration::from_secs(60))).with_client("apps", "east", client);
    let err = scenario(
        async move {
            let (_, respond) = server.0.next_request().await.unwrap();
            let status = json!({
                "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 403, "reason": "Forbidden",
                "message": "deployments.apps is forbidden: User \"drover\" cannot list resource \"deployments\""
            });
            respond.send_response(reply(403, &status));
        },
        compute.capacity("apps", "east"),
    )
    .await
    .unwrap_err();
    assert!(!err.retryable());
    assert!(
        err.message.starts_with("apps in east: list Deployments: deployments.apps is forbidden"),
        "{}",
        err.message
    );
    assert!(err.message.ends_with("(docs/kubernetes.md)"), "{}", err.message);
    let source = std::error::Error::source(&err).expect("keeps kube's error");
    assert!(matches!(source.downcast_ref::<kube::Error>(), Some(kube::Error::Api(s)) if s.code == 403), "{source:?}");
}

/// A cluster as the scale step sees it: replica counts that patches change, pods ready at once.
#[derive(Default)]
struct Cluster {
    replicas: BTreeMap<String, u32>,
    /// (workload, minReplicas, maxReplicas) by autoscaler name.
    autoscalers: BTreeMap<String, (String, u32, u32)>,
}

/// Answers lists and merge patches from `cluster` until drover drops the client.
async fn serve(mut handle: Handle, cluster: Arc<Mutex<Cluster>>) {
    while let Some((request, respond)) = handle.next_request().await {
        let path = request.uri().path().to_owned();
        let method = request.method().clone();
        let body = request.into_body().collect_bytes().await.unwrap();
        let mut c = cluster.lock().unwrap();
        let answer = if method == "PATCH" {
            let patch: Value = serde_json::from_slice(&body).unwrap();
            let name = path.rsplit('/').next().unwrap().to_owned();
            if path.starts_with(AUTOSCALERS) {
                let hpa = c.autoscalers.get_mut(&name).unwrap();
                hpa.1 = patch["spec"]["minReplicas"].as_u64().unwrap() as u32;
                hpa.2 = patch["spec"]["maxReplicas"].as_u64().unwrap() as u32;
                mk_autoscaler(&name, "Deployment", &hpa.0, hpa.1, hpa.2)
            } else {
                let n = patch["spec"]["replicas"].as_u64().unwrap() as u32;
                c.replicas.insert(name.clone(), n);
                mk_deployment(&name, n, n)
            }
        } else if path == DEPLOYMENTS {
            list("Deployment", c.replicas.iter().map(|(name, &n)| mk_deployment(name, n, n)).collect())
        } else if path == STATEFULSETS {
            list("StatefulSet", vec![])
        } else {
            let items = c.autoscalers.iter().map(|(n, (t, min, max))| mk_autoscaler(n, "Deployment", t, *min, *max));
            list("HorizontalPodAutoscaler", items.collect())
        };
        respond.send_response(reply(200, &answer));
    }
}

fn cluster(replicas: &[(&str, u32)], autoscalers: &[(&str, &str, u32, u32)]) -> Arc<Mutex<Cluster>> {
    Arc::new(Mutex::new(Cluster {
        replicas: replicas.iter().map(|&(n, r)| (n.to_owned(), r)).collect(),
        autoscalers: autoscalers.iter().map(|&(n, t, min, max)| (n.to_owned(), (t.to_owned(), min, max))).collect(),
    }))
}

#[tokio::test]
async fn a_switchover_scales_the_standby_clusters_workloads_and_a_drill_undo_sets_them_back() {
    let plan = plan(Duration::from_secs(60));
    let east = cluster(&[("api", 6), ("web", 2)], &[("api", "api", 3, 12)]);
    let west = cluster(&[("api", 1), ("web", 1)], &[("api", "api", 1, 12)]);
    let (east_client, east_handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let (west_client, west_handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let servers = [tokio::spawn(serve(east_handle, east.clone())), tokio::spawn(serve(west_handle, west.clone()))];
    let compute = KubernetesCompute::new(&plan)
        .with_client("apps", "east", Client::new(east_client, "default"))
        .with_client("apps", "west", Client::new(west_client, "default"));
    let world = FakeWorld::two_regions();
    let journal = MemoryJournal::default();
    let providers = drover_core::engine::Providers { compute: &compute, ..drover_core::engine::Providers::all(&world) };
    let observed = drover_core::engine::observe(&plan, &journal, providers).await.unwrap();
    let header = plan_run(&plan, RunKind::Switchover, "west", &observed, "test").unwrap();
    let immediate = drover_core::engine::RetryPolicy::IMMEDIATE;
    let engine = drover_core::engine::Engine::new(&plan, &journal, providers).with_retries(immediate, immediate);
    let run = engine.start(&header).await.unwrap();
    assert_eq!(run.state, RunState::Completed, "{:?}", run.reason);
    let step = run.steps.iter().find(|s| s.kind == drover_core::plan::StepKind::Scale).unwrap();
    assert_eq!(step.state, StepState::Applied);
    assert_eq!(
        step.detail.as_deref(),
        Some(
            "west runs apps deployment/api 6/6 ready (100% of east's 6), apps deployment/web 2/2 ready (100% of east's 2)"
        )
    );
    {
        let w = west.lock().unwrap();
        assert_eq!((w.replicas["api"], w.replicas["web"]), (6, 2));
        assert_eq!(w.autoscalers["api"], ("api".into(), 6, 12), "the autoscaler's floor holds the new replicas");
    }
    let restored = engine.undo_scale(&header.id).await.unwrap();
    assert_eq!(restored, ["west apps deployment/api back to 1", "west apps deployment/web back to 1"]);
    {
        let w = west.lock().unwrap();
        assert_eq!((w.replicas["api"], w.replicas["web"]), (1, 1));
        assert_eq!(w.autoscalers["api"], ("api".into(), 1, 12));
    }
    // East, the old primary, was only read.
    assert_eq!(east.lock().unwrap().replicas["api"], 6);
    drop(compute);
    for server in servers {
        server.await.unwrap();
    }
}

/// The plan, its clusters reached through a kubeconfig (kept in the returned directory)
/// whose API server accepts connections and never answers.
async fn plan_towards_a_silent_api_server() -> (Plan, tempfile::TempDir) {
    let silent = silent::silent_server().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: silent\n  cluster: {{ server: 'http://{silent}' }}\n\
             users:\n- name: drover\n  user: {{ token: t0ken }}\n\
             contexts:\n- name: silent\n  context: {{ cluster: silent, user: drover }}\ncurrent-context: silent\n"
        ),
    )
    .unwrap();
    let mut plan = plan(Duration::from_secs(60));
    for target in plan.compute.get_mut("apps").unwrap().targets.values_mut() {
        let ComputeTarget::Kubernetes(k) = target else { unreachable!() };
        k.cluster = ClusterAccess::Kubeconfig { path: Some(kubeconfig.clone()), context: None };
    }
    (plan, dir)
}

/// An API server that accepts the connection and never answers, reached the way a plan
/// reaches it (a kubeconfig): each call ends at its deadline, the scale step gives up after
/// its attempts, and the run pauses saying which call got no answer and what to check.
#[tokio::test]
async fn a_scale_against_an_api_server_that_never_answers_pauses_the_run() {
    let (plan, _dir) = plan_towards_a_silent_api_server().await;
    // The read timeout is the longer, so the per-call deadline is the one seen.
    let timeouts = KubeTimeouts {
        connect: Duration::from_secs(1),
        read: Duration::from_secs(5),
        call: Duration::from_millis(300),
    };
    let compute = KubernetesCompute::new(&plan).with_timeouts(timeouts);
    let world = FakeWorld::two_regions();
    let journal = MemoryJournal::default();
    let observed =
        drover_core::engine::observe(&plan, &journal, drover_core::engine::Providers::all(&world)).await.unwrap();
    let header = plan_run(&plan, RunKind::Switchover, "west", &observed, "test").unwrap();
    let providers = drover_core::engine::Providers { compute: &compute, ..drover_core::engine::Providers::all(&world) };
    let immediate = drover_core::engine::RetryPolicy::IMMEDIATE;
    let engine = drover_core::engine::Engine::new(&plan, &journal, providers).with_retries(immediate, immediate);

    let run =
        tokio::time::timeout(Duration::from_secs(60), engine.start(&header)).await.expect("hung for 60s").unwrap();
    assert_eq!(run.state, RunState::Paused, "{:?}", run.reason);
    let step = run.steps.iter().find(|s| s.kind == drover_core::plan::StepKind::Scale).unwrap();
    assert_eq!(step.state, StepState::Failed);
    let reason = run.reason.unwrap_or_default();
    assert!(
        reason.starts_with(
            "west scale: cannot read apps in east (apps in east: list Deployments: no answer from the Kubernetes API server within 300ms — check that it answers"
        ),
        "{reason}"
    );
}

/// The connector's read timeout alone ends a call to an API server that never answers.
#[tokio::test]
async fn the_read_timeout_ends_a_call_the_api_server_never_answers() {
    let (plan, _dir) = plan_towards_a_silent_api_server().await;
    let timeouts = KubeTimeouts {
        connect: Duration::from_secs(1),
        read: Duration::from_millis(300),
        call: Duration::from_secs(600),
    };
    let compute = KubernetesCompute::new(&plan).with_timeouts(timeouts);
    let err = tokio::time::timeout(Duration::from_secs(60), compute.capacity("apps", "east"))
        .await
        .expect("hung for 60s")
        .unwrap_err();
    assert!(err.retryable(), "{err}");
    assert!(err.message.starts_with("apps in east: list Deployments: "), "{err}");
}
