//! The lab app: the service the drill protects. One runs in each region against that
//! region's database. A write is acknowledged (200) only after its COMMIT returned.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use drover_core::drill::{CanaryHeld, CanaryWrite};
use serde::{Deserialize, Serialize};

use crate::{LabError, postgres};

/// How long /healthz waits for `SELECT 1`.
const HEALTH_TIMEOUT: Duration = Duration::from_millis(500);
/// A write that takes longer is answered 503; its commit may still finish later.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Idle connections kept for reuse.
const POOL_IDLE: usize = 8;
/// Connections open at once for writes. Bounded, as any real app's pool is: a commit that
/// waits (for a synchronous standby cut off by a partition) holds its server process,
/// and an unbounded pool would use up the server's max_connections, failing every
/// health check with "too many clients" instead of only stalling writes.
const WRITE_CONNECTIONS: usize = 16;
/// Health checks have connections of their own, so stalled writes never starve them.
const HEALTH_CONNECTIONS: usize = 2;

struct App {
    region: String,
    writes: Arc<Pool>,
    health: Arc<Pool>,
}

/// A few connections, made on demand. A closed one is dropped, never reused, so the app
/// follows its database through restarts and promotion.
struct Pool {
    dsn: String,
    idle: Mutex<Vec<tokio_postgres::Client>>,
    slots: Arc<tokio::sync::Semaphore>,
}

/// A connection with its slot in the pool: the slot is free again when it is dropped.
struct Conn {
    client: tokio_postgres::Client,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl Pool {
    fn new(dsn: &str, size: usize) -> Arc<Pool> {
        Arc::new(Pool {
            dsn: dsn.to_string(),
            idle: Mutex::new(Vec::new()),
            slots: Arc::new(tokio::sync::Semaphore::new(size)),
        })
    }

    async fn get(&self) -> Result<Conn, String> {
        let slot = Arc::clone(&self.slots).acquire_owned().await.map_err(|e| e.to_string())?;
        loop {
            let candidate = self.idle.lock().expect("pool lock").pop();
            match candidate {
                Some(c) if !c.is_closed() => return Ok(Conn { client: c, _slot: slot }),
                Some(_) => continue,
                None => {
                    let client = postgres::connect(&self.dsn, CONNECT_TIMEOUT).await?;
                    return Ok(Conn { client, _slot: slot });
                }
            }
        }
    }

    fn put(&self, conn: Conn) {
        let mut idle = self.idle.lock().expect("pool lock");
        if !conn.client.is_closed() && idle.len() < POOL_IDLE {
            idle.push(conn.client);
        }
    }

    /// Runs `query` on a pooled connection in a task of its own, waiting `timeout` for it.
    /// A query still running then keeps its connection and slot until it ends: its
    /// server process is busy either way, and dropping the connection would not free it.
    /// A query that got its connection only after `timeout` is not started: its client
    /// has given up, and a write run then (minutes later, once a database that hung comes
    /// back) would be one nobody asked for any more.
    async fn run<T, F, Fut>(self: &Arc<Self>, timeout: Duration, query: F) -> Option<Result<T, String>>
    where
        T: Send + 'static,
        F: FnOnce(Conn) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = (Conn, Result<T, tokio_postgres::Error>)> + Send + 'static,
    {
        let pool = Arc::clone(self);
        let deadline = tokio::time::Instant::now() + timeout;
        let task = tokio::spawn(async move {
            let conn = pool.get().await?;
            if tokio::time::Instant::now() >= deadline {
                pool.put(conn);
                return Err("its client gave up before a connection was free".to_string());
            }
            let (conn, done) = query(conn).await;
            pool.put(conn);
            done.map_err(|e| postgres::describe(&e))
        });
        match tokio::time::timeout(timeout, task).await {
            Ok(Ok(result)) => Some(result),
            Ok(Err(e)) => Some(Err(format!("the query task failed: {e}"))),
            Err(_) => None,
        }
    }
}

#[derive(Deserialize)]
struct WriteParams {
    seq: u64,
}

/// The acknowledgement: `{"seq":N,"region":"east"}`.
#[derive(Serialize)]
struct Ack<'a> {
    seq: u64,
    region: &'a str,
}

/// Serves the lab app for `region` on `listen` until SIGTERM or Ctrl-C.
pub async fn serve(region: String, listen: SocketAddr, dsn: String) -> Result<(), LabError> {
    drover_adapters::pg_connect::PgConnector::parse(&dsn)
        .map_err(|e| LabError::refused(format!("{region} app: the DSN cannot be used: {e}")))?;
    let app = Arc::new(App {
        region: region.clone(),
        writes: Pool::new(&dsn, WRITE_CONNECTIONS),
        health: Pool::new(&dsn, HEALTH_CONNECTIONS),
    });
    let router = Router::new()
        .route("/write", post(write))
        .route(CANARY_WRITES, post(canary_write).get(canary_held))
        .route("/healthz", get(healthz))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| LabError::failed(format!("{region} app: cannot listen on {listen}: {e}")))?;
    eprintln!("{region} app: listening on {listen}");
    axum::serve(listener, router)
        .with_graceful_shutdown(stopped())
        .await
        .map_err(|e| LabError::failed(format!("{region} app: {e}")))
}

async fn stopped() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

async fn write(State(app): State<Arc<App>>, Query(params): Query<WriteParams>) -> Response {
    let Ok(seq) = i64::try_from(params.seq) else {
        return (StatusCode::BAD_REQUEST, "seq must fit in a bigint").into_response();
    };
    let region = app.region.clone();
    let result = app
        .writes
        .run(WRITE_TIMEOUT, move |conn| async move {
            let sql = "INSERT INTO lab_writes (seq, region) VALUES ($1, $2) ON CONFLICT (seq) DO NOTHING";
            let done = conn.client.execute(sql, &[&seq, &region]).await;
            (conn, done)
        })
        .await;
    match result {
        Some(Ok(_)) => (StatusCode::OK, axum::Json(Ack { seq: params.seq, region: &app.region })).into_response(),
        Some(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, e).into_response(),
        None => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("no commit within {} s", WRITE_TIMEOUT.as_secs())).into_response()
        }
    }
}

/// The canary protocol (docs/drill.md) under `http://<name>:8080/drover-canary`. The lab
/// app asks for no token: any Authorization header is accepted.
pub const CANARY_WRITES: &str = "/drover-canary/writes";

/// `POST /drover-canary/writes {"drill", "seq"}`: 200 with the body echoed once committed.
async fn canary_write(State(app): State<Arc<App>>, body: axum::body::Bytes) -> Response {
    let Ok(asked) = serde_json::from_slice::<CanaryWrite>(&body) else {
        return (StatusCode::BAD_REQUEST, "expected {\"drill\": \"<id>\", \"seq\": <number>}").into_response();
    };
    let Ok(seq) = i64::try_from(asked.seq) else {
        return (StatusCode::BAD_REQUEST, "seq must fit in a bigint").into_response();
    };
    let (drill, region) = (asked.drill.clone(), app.region.clone());
    let result = app
        .writes
        .run(WRITE_TIMEOUT, move |conn| async move {
            let sql = "INSERT INTO lab_canary_writes (drill, seq, region) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
            let done = conn.client.execute(sql, &[&drill, &seq, &region]).await;
            (conn, done)
        })
        .await;
    match result {
        Some(Ok(_)) => (StatusCode::OK, axum::Json(asked)).into_response(),
        Some(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, e).into_response(),
        None => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("no commit within {} s", WRITE_TIMEOUT.as_secs())).into_response()
        }
    }
}

#[derive(Deserialize)]
struct HeldParams {
    drill: String,
}

/// `GET /drover-canary/writes?drill=ID`: every seq this database holds for the drill, in ranges.
async fn canary_held(State(app): State<Arc<App>>, Query(params): Query<HeldParams>) -> Response {
    let drill = params.drill.clone();
    let result = app
        .writes
        .run(WRITE_TIMEOUT, move |conn| async move {
            let sql = "SELECT seq FROM lab_canary_writes WHERE drill = $1";
            let done = conn.client.query(sql, &[&drill]).await;
            (conn, done)
        })
        .await;
    match result {
        Some(Ok(rows)) => {
            let seqs = rows.iter().filter_map(|r| u64::try_from(r.get::<_, i64>(0)).ok());
            (StatusCode::OK, axum::Json(CanaryHeld::new(&params.drill, seqs))).into_response()
        }
        Some(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, e).into_response(),
        None => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("no answer within {} s", WRITE_TIMEOUT.as_secs())).into_response()
        }
    }
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    let result = app
        .health
        .run(HEALTH_TIMEOUT, |conn| async move {
            let done = conn.client.simple_query("SELECT 1").await.map(|_| ());
            (conn, done)
        })
        .await;
    match result {
        Some(Ok(())) => (StatusCode::OK, format!("ok {}", app.region)).into_response(),
        Some(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("{} database: {e}", app.region)).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{} database: no answer within {} ms", app.region, HEALTH_TIMEOUT.as_millis()),
        )
            .into_response(),
    }
}
