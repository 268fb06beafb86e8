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
use serde::{Deserialize, Serialize};

use crate::{LabError, postgres};

/// How long /healthz waits for `SELECT 1`.
const HEALTH_TIMEOUT: Duration = Duration::from_millis(500);
/// A write that takes longer is answered 503 and its connection dropped (it may be wedged).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Idle connections kept for reuse.
const POOL_IDLE: usize = 8;

struct App {
    region: String,
    pool: Pool,
}

/// A few connections, made on demand. A closed one is dropped, never reused, so the app
/// follows its database through restarts and promotion.
struct Pool {
    dsn: String,
    idle: Mutex<Vec<tokio_postgres::Client>>,
}

impl Pool {
    async fn get(&self) -> Result<tokio_postgres::Client, String> {
        loop {
            let candidate = self.idle.lock().expect("pool lock").pop();
            match candidate {
                Some(c) if !c.is_closed() => return Ok(c),
                Some(_) => continue,
                None => return postgres::connect(&self.dsn, CONNECT_TIMEOUT).await,
            }
        }
    }

    fn put(&self, client: tokio_postgres::Client) {
        let mut idle = self.idle.lock().expect("pool lock");
        if !client.is_closed() && idle.len() < POOL_IDLE {
            idle.push(client);
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
    let _: tokio_postgres::Config =
        dsn.parse().map_err(|e| LabError::refused(format!("{region} app: the DSN is not valid: {e}")))?;
    let app = Arc::new(App { region: region.clone(), pool: Pool { dsn, idle: Mutex::new(Vec::new()) } });
    let router = Router::new().route("/write", post(write)).route("/healthz", get(healthz)).with_state(app);
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
    let result = tokio::time::timeout(WRITE_TIMEOUT, async {
        let client = app.pool.get().await?;
        let done = client
            .execute(
                "INSERT INTO lab_writes (seq, region) VALUES ($1, $2) ON CONFLICT (seq) DO NOTHING",
                &[&seq, &app.region],
            )
            .await;
        app.pool.put(client);
        done.map_err(|e| postgres::describe(&e))
    })
    .await;
    match result {
        Ok(Ok(_)) => (StatusCode::OK, axum::Json(Ack { seq: params.seq, region: &app.region })).into_response(),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, e).into_response(),
        Err(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("no commit within {} s", WRITE_TIMEOUT.as_secs())).into_response()
        }
    }
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    let result = tokio::time::timeout(HEALTH_TIMEOUT, async {
        let client = app.pool.get().await?;
        let done = client.simple_query("SELECT 1").await;
        app.pool.put(client);
        done.map(|_| ()).map_err(|e| postgres::describe(&e))
    })
    .await;
    match result {
        Ok(Ok(())) => (StatusCode::OK, format!("ok {}", app.region)).into_response(),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("{} database: {e}", app.region)).into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{} database: no answer within {} ms", app.region, HEALTH_TIMEOUT.as_millis()),
        )
            .into_response(),
    }
}
