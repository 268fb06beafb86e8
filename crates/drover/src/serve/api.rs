//! The REST API under /api/v1, /metrics, /healthz and /readyz. Every route is
//! declared once in `ROUTES`; the router is built from it and a test holds it
//! against the OpenAPI file, so nothing served goes undocumented.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use drover_core::engine::{EngineError, now_ms};
use drover_core::history::{self, DEFAULT_PAGE, PageRequest};
use drover_core::run::{Entry, RunId, RunKind, RunState};
use serde_json::{Value, json};

use super::daemon::{Daemon, Drive, NotLeader};
use super::metrics;
use super::tokens::{Caller, Role, Tokens};
use crate::app::error::{ErrorClass, Failure, engine_failure, refused, store_failure};
use crate::app::runs::PlanRequest;
use drover_core::request::{Abort, Approve, BodyError, Resume, StartRun, read_body};

/// The OpenAPI document, served as is and checked against `ROUTES` by tests.
pub const OPENAPI: &str = include_str!("../../../../docs/openapi.json");

/// Who may call what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health, readiness, metrics: nothing secret, needed by probes and scrapers).
    Open,
    /// Reads: any token (operator, reader, peer), or anyone with `serve --open-reads`.
    Read,
    /// Changes: an operator's token only.
    Write,
}

/// Every served route: method, path (axum syntax), access.
pub const ROUTES: &[(&str, &str, Access)] = &[
    ("GET", "/healthz", Access::Open),
    ("GET", "/readyz", Access::Open),
    ("GET", "/metrics", Access::Open),
    ("GET", "/api/v1/openapi.json", Access::Open),
    ("GET", "/api/v1/plan", Access::Read),
    ("GET", "/api/v1/regions", Access::Read),
    ("GET", "/api/v1/vantage", Access::Read),
    ("GET", "/api/v1/readiness", Access::Read),
    ("GET", "/api/v1/runs", Access::Read),
    ("POST", "/api/v1/runs", Access::Write),
    ("GET", "/api/v1/runs/{id}", Access::Read),
    ("POST", "/api/v1/runs/{id}/approve", Access::Write),
    ("POST", "/api/v1/runs/{id}/resume", Access::Write),
    ("POST", "/api/v1/runs/{id}/abort", Access::Write),
    ("GET", "/api/v1/drills", Access::Read),
    ("GET", "/api/v1/drills/{id}", Access::Read),
];

pub struct Api {
    pub daemon: Arc<Daemon>,
    /// None: changes are refused (no --token-file).
    pub tokens: Option<Tokens>,
    /// Reads need no token (`serve --open-reads`, on loopback only).
    pub open_reads: bool,
}

type Shared = Arc<Api>;

/// A JSON error a client can act on: what went wrong and, for bad input, which field.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<String>,
}

impl ApiError {
    /// An answer about the HTTP exchange itself (a missing or wrong token), not the request.
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), field: None }
    }

    /// Bad input in the request body's `field`.
    fn field(field: &str, message: String) -> ApiError {
        ApiError { field: Some(field.into()), ..ApiError::from(Failure::input(message)) }
    }
}

/// The status is the error class's (`ErrorClass::http_status`), the message the operator's.
impl From<Failure> for ApiError {
    fn from(f: Failure) -> ApiError {
        let status = StatusCode::from_u16(f.class.http_status()).expect("every class has a valid HTTP status");
        ApiError::new(status, f.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if let Some(field) = self.field {
            body["field"] = json!(field);
        }
        (self.status, axum::Json(body)).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

fn ok(value: impl serde::Serialize) -> ApiResult {
    Ok(axum::Json(value).into_response())
}

/// A body refused before anything is done: 400, naming the field when one is at fault.
impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> ApiError {
        ApiError { field: e.field, ..ApiError::from(Failure::input(e.message)) }
    }
}

pub fn router(api: Api) -> Router {
    let api = Arc::new(api);
    let mut router = Router::new();
    for &(method, path, access) in ROUTES {
        router = router.route(
            path,
            handler(method, path).layer(axum::middleware::from_fn_with_state((Arc::clone(&api), access), authorize)),
        );
    }
    router.with_state(api)
}

fn handler(method: &str, path: &str) -> MethodRouter<Shared> {
    match (method, path) {
        ("GET", "/healthz") => get(|| async { "ok\n" }),
        ("GET", "/readyz") => get(readyz),
        ("GET", "/metrics") => get(metrics_text),
        ("GET", "/api/v1/openapi.json") => get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }),
        ("GET", "/api/v1/plan") => get(plan),
        ("GET", "/api/v1/regions") => get(regions),
        ("GET", "/api/v1/vantage") => get(|State(api): State<Shared>| async move { ok(api.daemon.own_report()) }),
        ("GET", "/api/v1/readiness") => get(readiness),
        ("GET", "/api/v1/runs") => get(runs),
        ("POST", "/api/v1/runs") => post(start_run),
        ("GET", "/api/v1/runs/{id}") => get(run),
        ("POST", "/api/v1/runs/{id}/approve") => post(approve),
        ("POST", "/api/v1/runs/{id}/resume") => post(resume),
        ("POST", "/api/v1/runs/{id}/abort") => post(abort),
        ("GET", "/api/v1/drills") => get(drills),
        ("GET", "/api/v1/drills/{id}") => get(drill),
        _ => unreachable!("every route in ROUTES has a handler: {method} {path}"),
    }
}

/// Lets the request through when its token's role may make it (or the route is open), and
/// hands the handler who called (`Caller`), which changes record.
async fn authorize(
    State((api, access)): State<(Shared, Access)>,
    headers: HeaderMap,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let needs_token = match access {
        Access::Open => false,
        Access::Read => !api.open_reads,
        Access::Write => true,
    };
    if needs_token {
        let Some(tokens) = &api.tokens else {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "this daemon was started without --token-file, so it accepts no changes (and no reads without --open-reads)",
            )
            .into_response();
        };
        let given =
            headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        let Some(caller) = given.and_then(|g| tokens.caller(g)) else {
            let mut response =
                ApiError::new(StatusCode::UNAUTHORIZED, "missing or wrong bearer token (Authorization: Bearer …)")
                    .into_response();
            response.headers_mut().insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("static header"));
            return response;
        };
        if access == Access::Write && caller.role != Role::Operator {
            let why = match caller.role {
                Role::Peer => {
                    "is a peer's: a daemon reads its peers' reports and never starts, approves, resumes or aborts runs"
                }
                _ => "may only read",
            };
            let message = format!(
                "the token '{}' (role {}) {why}; a person's operator token makes changes",
                caller.name,
                caller.role.as_str()
            );
            return ApiError::new(StatusCode::FORBIDDEN, message).into_response();
        }
        request.extensions_mut().insert(caller);
    }
    next.run(request).await
}

/// Ready: every check probed once (verdicts mean something), and every loop alive (beating,
/// not down nor stuck). `/healthz` only says the process answers.
async fn readyz(State(api): State<Shared>) -> Response {
    let checks_probed = api.daemon.state().ready;
    let loops = api.daemon.loops.unready();
    let ready = checks_probed && loops.is_empty();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(json!({"ready": ready, "checks_probed": checks_probed, "unready_loops": loops})))
        .into_response()
}

async fn metrics_text(State(api): State<Shared>) -> Response {
    // A journal that cannot be read shows as drover_journal_readable 0, never as no runs.
    let runs = match metrics::runs_shown(api.daemon.cx.journal.as_ref()).await {
        Ok(runs) => Some(runs),
        Err(e) => {
            tracing::warn!(vantage = %api.daemon.vantage, error = %e, "/metrics could not read the journal");
            None
        }
    };
    let reports = api.daemon.reports().await;
    let text = metrics::render(&api.daemon, &reports, runs.as_deref(), now_ms());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// The last readiness evaluation, as `drover readiness -o json` prints it; 503 until the
/// first round has finished (or when `--readiness-every 0` turned it off).
async fn readiness(State(api): State<Shared>) -> ApiResult {
    match api.daemon.state().readiness.clone() {
        Some(report) => ok(report),
        None => Err(ApiError::from(Failure::unavailable(
            "readiness has not been evaluated yet (the first round runs at start; --readiness-every 0 turns it off)",
        ))),
    }
}

async fn plan(State(api): State<Shared>) -> ApiResult {
    ok(crate::app::plan::summary_json(&api.daemon.cx.plan))
}

async fn regions(State(api): State<Shared>) -> ApiResult {
    let d = &api.daemon;
    let reports = d.reports().await;
    let shared = d.state();
    let regions: Vec<Value> = d
        .cx
        .plan
        .regions
        .iter()
        .map(|(name, region)| {
            let checks: Vec<Value> = shared
                .checks
                .iter()
                .filter(|((r, _), _)| r == name)
                .map(|((_, check), entry)| {
                    json!({
                        "check": check,
                        "health": entry.state.health(),
                        "last": entry.last.as_ref().map(|l| json!({"ok": l.ok, "latency_ms": l.latency.as_millis() as u64, "detail": l.detail})),
                    })
                })
                .collect();
            json!({
                "region": name,
                "role": region.role.as_str(),
                "verdict": shared.verdicts.get(name),
                "database": shared.members.get(name),
                "checks": checks,
            })
        })
        .collect();
    ok(json!({
        "vantage": d.vantage,
        "regions": regions,
        "vantages": reports.iter().map(|r| json!({"vantage": r.vantage, "at_ms": r.at_ms, "expires_ms": r.expires_ms, "fresh": r.is_fresh(now_ms())})).collect::<Vec<_>>(),
        "peer_errors": d.exchange.problems(),
        "refusals": shared.refusals,
        "last_refusal": shared.last_refusal.as_ref().map(|r| json!({"gate": r.label(), "reason": r.to_string()})),
    }))
}

/// `GET /api/v1/runs?limit=50&before=<run>`: one page, newest first, with the cursor of the next.
async fn runs(State(api): State<Shared>, RawQuery(query): RawQuery) -> ApiResult {
    ok(api.daemon.cx.journal.page(&page_request(query)?).await.map_err(store_error)?)
}

/// `GET /api/v1/drills?limit=50&before=<drill>`: one page of drill rows, newest first.
async fn drills(State(api): State<Shared>, RawQuery(query): RawQuery) -> ApiResult {
    ok(crate::app::drills::page(api.daemon.cx.journal.as_ref(), &page_request(query)?).await?)
}

async fn drill(State(api): State<Shared>, Path(id): Path<String>) -> ApiResult {
    ok(crate::app::drills::show(api.daemon.cx.journal.as_ref(), &id).await?)
}

/// A page's `limit` and `before` from the query string (runs and drills alike).
fn page_request(query: Option<String>) -> Result<PageRequest, ApiError> {
    let mut request = PageRequest::first(DEFAULT_PAGE);
    for pair in query.as_deref().unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "limit" => request.limit = history::page_limit(value).map_err(|e| ApiError::field("limit", e))?,
            "before" => request.before = Some(RunId(value.to_string())),
            _ => {
                return Err(ApiError::field(name, format!("unknown query parameter '{name}'; allowed: limit, before")));
            }
        }
    }
    Ok(request)
}

async fn run(State(api): State<Shared>, Path(id): Path<String>) -> ApiResult {
    ok(api.daemon.cx.journal.summary(&RunId(id)).await.map_err(store_error)?)
}

/// Plans the run now (a refusal is a 409 with the reason) and drives it in the
/// background; the answer carries the run id to follow.
async fn start_run(State(api): State<Shared>, Extension(caller): Extension<Caller>, bytes: Bytes) -> ApiResult {
    let body: StartRun = read_body(&bytes)?;
    let request = body.request()?;
    let kind = request.kind();
    let daemon = Arc::clone(&api.daemon);
    // A follower plans nothing: the leader decides, from its own view of the world.
    let authority = daemon.authority().await.map_err(not_leader)?;
    // A journal that cannot be read now is a 503: the world cannot be judged.
    let observed = daemon.cx.observe().await?;
    let header = request.plan_with(&daemon.cx, &observed, &body.reason).await.map_err(|r| {
        let failure = refused(kind, &r);
        // A region the request names and the plan does not allow: the field that named it.
        match failure.class {
            ErrorClass::Input => {
                ApiError::field(if kind == RunKind::Reprotect { "region" } else { "to" }, failure.message)
            }
            _ => ApiError::from(failure),
        }
    })?;
    let header = drover_core::run::RunHeader { requested_by: Some(caller.name), ..header };
    // Held before the answer: nothing else drives the run between its start and its driver.
    let held = daemon.begin_held(&authority, &header).await.map_err(engine_failure)?;
    let id = header.id.clone();
    tokio::spawn(async move {
        if let Err(e) = daemon.drive_held(&authority, held, Drive::Resume { by: None }).await {
            tracing::warn!(run = %id, "run stopped: {e}");
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({
            "run": header.id, "kind": kind.as_str(), "from": header.from, "to": header.to, "epoch": header.epoch
        })),
    )
        .into_response())
}

async fn approve(
    State(api): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult {
    let request: Approve = read_body(&bytes)?;
    if let Some(by) = request.by.filter(|by| *by != caller.name) {
        let by: String = by.chars().take(64).collect();
        return Err(ApiError::field(
            "by",
            format!(
                "an approval is recorded under the name of the token that sends it, '{}', not '{by}': drop `by` (or send a token of your own)",
                caller.name
            ),
        ));
    }
    drive(api, id, How::Approve, caller.name).await
}

async fn resume(
    State(api): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult {
    let _: Resume = read_body(&bytes)?;
    drive(api, id, How::Resume, caller.name).await
}

#[derive(Clone, Copy)]
enum How {
    Approve,
    Resume,
}

/// Checks the run can go on and holds it for this daemon (so a wrong state, or another live
/// driver, is an immediate 409 naming it), then drives it in the background: approves or
/// resumes it, recorded under `by` (the caller's token name).
async fn drive(api: Shared, id: String, how: How, by: String) -> ApiResult {
    let id = RunId(id);
    let authority = api.daemon.authority().await.map_err(not_leader)?;
    let summary = api.daemon.cx.journal.summary(&id).await.map_err(store_error)?;
    if !summary.state.is_active() {
        return Err(Failure::conflict(format!("run {id} has ended ({})", summary.state.as_str())).into());
    }
    // A wrong state is a 409 now, not a failure in the background after a 202.
    let refused = match (how, summary.state) {
        (How::Approve, state) if state != RunState::AwaitingApproval => {
            Some(EngineError::NotAwaitingApproval(id.clone(), state.as_str()))
        }
        (How::Resume, RunState::AwaitingApproval) => Some(EngineError::NeedsApproval(id.clone())),
        _ => None,
    };
    if let Some(refused) = refused {
        return Err(engine_failure(refused).into());
    }
    let held = api.daemon.hold(&authority, &id).await.map_err(engine_failure)?;
    let daemon = Arc::clone(&api.daemon);
    let run = id.clone();
    tokio::spawn(async move {
        let how = match how {
            How::Approve => Drive::Approve { by: &by },
            How::Resume => Drive::Resume { by: Some(&by) },
        };
        if let Err(e) = daemon.drive_held(&authority, held, how).await {
            tracing::warn!(run = %run, "run stopped: {e}");
        }
    });
    Ok((StatusCode::ACCEPTED, axum::Json(json!({"run": id}))).into_response())
}

async fn abort(
    State(api): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult {
    let request: Abort = read_body(&bytes)?;
    let authority = api.daemon.authority().await.map_err(not_leader)?;
    let on_entry = |_: &Entry| {};
    let engine = api.daemon.engine(&authority, &on_entry);
    let summary =
        engine.abort_as(&RunId(id), &request.reason, request.undo, Some(&caller.name)).await.map_err(engine_failure)?;
    ok(summary)
}

/// Another daemon leads: a conflict (409), naming it, so the client can send the change there.
fn not_leader(e: NotLeader) -> ApiError {
    Failure::conflict(e.0).into()
}

fn store_error(e: drover_core::StoreError) -> ApiError {
    store_failure(e).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (method, path) pair in the OpenAPI file.
    fn documented() -> Vec<(String, String)> {
        let doc: Value = serde_json::from_str(OPENAPI).expect("docs/openapi.json is JSON");
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                out.push((method.to_uppercase(), path.clone()));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn every_served_route_is_in_the_openapi_file_and_nothing_else() {
        let mut served: Vec<(String, String)> = ROUTES.iter().map(|(m, p, _)| (m.to_string(), p.to_string())).collect();
        served.sort();
        let documented = documented();
        let missing: Vec<_> = served.iter().filter(|r| !documented.contains(r)).collect();
        let stale: Vec<_> = documented.iter().filter(|r| !served.contains(r)).collect();
        assert!(missing.is_empty(), "served but not in docs/openapi.json: {missing:?}");
        assert!(stale.is_empty(), "in docs/openapi.json but not served: {stale:?}");
    }

    #[test]
    fn a_change_is_documented_as_needing_the_token() {
        let doc: Value = serde_json::from_str(OPENAPI).unwrap();
        for (method, path, access) in ROUTES {
            let op = &doc["paths"][path][method.to_lowercase()];
            let secured = op.get("security").is_some();
            assert_eq!(secured, *access != Access::Open, "{method} {path}: security in the OpenAPI file");
        }
    }

    /// A refused body is the client's mistake (400) and names its field; what is refused is
    /// core's (`drover_core::request`), tested there.
    #[test]
    fn a_bad_body_is_a_400_naming_its_field() {
        let e: ApiError = read_body::<StartRun>(br#"{"kind": "failover", "to": 3}"#).unwrap_err().into();
        assert_eq!((e.status, e.field.as_deref()), (StatusCode::BAD_REQUEST, Some("to")));
        let start: StartRun = read_body(br#"{"kind": "reprotect"}"#).unwrap();
        let e: ApiError = start.request().unwrap_err().into();
        assert_eq!((e.status, e.field.as_deref()), (StatusCode::BAD_REQUEST, Some("region")));
    }
}
