//! The daemon's listener: HTTP/1 over TLS (or plain on loopback), built so that
//! nothing a client does on the network can take the API away from the peers and
//! operators who need it during a failover.
//!
//! - **A cap on connections.** At most `max_connections` are open; when a new one
//!   arrives at the cap, an idle one is closed to make room: the oldest that never sent
//!   a request, else the one longest between requests (gracefully: a response being
//!   written finishes). Requests in flight are never cut. So a flood of silent
//!   connections churns among itself: a peer's pooled connection outlives it, and a new
//!   one is the youngest and sends its request at once.
//! - **Deadlines.** A client has `header_timeout` to finish the TLS handshake and
//!   each request's headers, also between requests on a kept-alive connection.
//! - **File descriptors.** The cap leaves the rest of the process's limit to the
//!   probes, the peers and the journal (`serve::run` sizes it).
//! - **Host check.** A request naming the daemon by a DNS name must use one of the
//!   configured names (DNS rebinding: a browser's page on another site cannot reach
//!   the API through a name that resolves here). IP literals are what peers and
//!   probes use, and are always accepted.
//! - **Bodies** larger than `MAX_BODY` are refused (413) before they are read whole.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::supervisor::unpoisoned;

/// The largest request body served: the API's bodies are a few hundred bytes of JSON.
pub const MAX_BODY: usize = 64 * 1024;

/// How the listener guards itself.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_connections: usize,
    /// For the TLS handshake, and for each request's headers (idle keep-alive included).
    pub header_timeout: Duration,
}

/// Which `Host` names a request may use; IP literals always pass.
#[derive(Clone, Debug, Default)]
pub struct Hosts {
    /// Lower case, without a trailing dot.
    pub names: Vec<String>,
    /// `localhost` passes too (the daemon listens on loopback).
    pub loopback: bool,
}

impl Hosts {
    /// Whether a request with this `Host` header value may be served. No header (HTTP/1.0,
    /// tools) passes: the check is against browsers, which always send one.
    pub fn allows(&self, host: Option<&str>) -> bool {
        let Some(host) = host else { return true };
        let name = match host.strip_prefix('[') {
            // [v6]:port
            Some(rest) => return rest.split(']').next().is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok()),
            None => {
                host.rsplit_once(':').map_or(host, |(name, port)| if port.parse::<u16>().is_ok() { name } else { host })
            }
        };
        if name.parse::<std::net::IpAddr>().is_ok() {
            return true;
        }
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        (self.loopback && name == "localhost") || self.names.contains(&name)
    }
}

/// What the listener has done since start, for `/metrics`.
#[derive(Debug, Default)]
pub struct ListenerStats {
    pub open: AtomicU64,
    /// Idle connections closed to make room at the cap.
    pub evicted: AtomicU64,
    /// New connections closed at once: the cap was reached and every connection was busy.
    pub refused: AtomicU64,
    pub tls_failed: AtomicU64,
    pub wrong_host: AtomicU64,
}

/// One listener per process, so its figures are process-wide.
pub static STATS: ListenerStats = ListenerStats {
    open: AtomicU64::new(0),
    evicted: AtomicU64::new(0),
    refused: AtomicU64::new(0),
    tls_failed: AtomicU64::new(0),
    wrong_host: AtomicU64::new(0),
};

/// Open connections, and the idle ones in the order they are closed to make room:
/// first those that never sent a request (oldest first), then those between requests
/// (longest idle first), so a peer's pooled connection outlives a flood of silent ones.
#[derive(Default)]
struct Slots {
    open: usize,
    idle: BTreeMap<(Tier, u64), Arc<Notify>>,
    next: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Tier {
    /// No request yet: closed at once when evicted.
    Silent,
    /// Kept alive between requests: closed gracefully (a response being written finishes).
    Between,
}

/// One connection's place among the slots.
struct Slot {
    slots: Arc<Mutex<Slots>>,
    close: Arc<Notify>,
    /// Its key in `idle` while idle; still set after an eviction took it out.
    idle_key: Mutex<Option<(Tier, u64)>>,
}

impl Slot {
    /// A new connection counts as idle until its first request arrives; at the cap the
    /// first idle one in `Slots` order makes room, and with none idle the new one is refused.
    fn take(slots: &Arc<Mutex<Slots>>, max: usize) -> Option<Arc<Slot>> {
        let mut s = unpoisoned(slots);
        if s.open >= max {
            let (_, evicted) = s.idle.pop_first()?;
            evicted.notify_one();
            STATS.evicted.fetch_add(1, Ordering::Relaxed);
        }
        s.open += 1;
        STATS.open.store(s.open as u64, Ordering::Relaxed);
        let close = Arc::new(Notify::new());
        let key = (Tier::Silent, s.next);
        s.next += 1;
        s.idle.insert(key, Arc::clone(&close));
        Some(Arc::new(Slot { slots: Arc::clone(slots), close, idle_key: Mutex::new(Some(key)) }))
    }

    /// A request arrived: the connection may no longer be evicted until `idle`. False when
    /// an eviction took it first (the request must not start: the connection is closing).
    fn busy(&self) -> bool {
        let mut s = unpoisoned(&self.slots);
        match unpoisoned(&self.idle_key).take() {
            Some(key) => s.idle.remove(&key).is_some(),
            None => true,
        }
    }

    fn idle(&self) {
        let mut s = unpoisoned(&self.slots);
        let key = (Tier::Between, s.next);
        s.next += 1;
        s.idle.insert(key, Arc::clone(&self.close));
        *unpoisoned(&self.idle_key) = Some(key);
    }

    /// Whether the connection has served a request (an eviction then closes it gracefully).
    fn has_served(&self) -> bool {
        unpoisoned(&self.idle_key).is_some_and(|(tier, _)| tier == Tier::Between)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut s = unpoisoned(&self.slots);
        if let Some(key) = unpoisoned(&self.idle_key).take() {
            s.idle.remove(&key);
        }
        s.open -= 1;
        STATS.open.store(s.open as u64, Ordering::Relaxed);
    }
}

/// Serves `app` on `listener` until the process ends.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<super::tls_files::TlsFiles>>,
    limits: Limits,
    hosts: Hosts,
) -> std::io::Result<()> {
    let slots = Arc::new(Mutex::new(Slots::default()));
    let hosts = Arc::new(hosts);
    let app = limited(app);
    let mut accept_failed = false;
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => {
                accept_failed = false;
                accepted
            }
            Err(e) => {
                // Out of file descriptors (or a connection reset before accept): say so once,
                // breathe, and go on; the kernel keeps the backlog.
                if !accept_failed {
                    tracing::warn!(error = %e, "could not accept a connection");
                    accept_failed = true;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Some(slot) = Slot::take(&slots, limits.max_connections) else {
            STATS.refused.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (app, hosts, tls, timeout) = (app.clone(), Arc::clone(&hosts), tls.clone(), limits.header_timeout);
        tokio::spawn(async move {
            let Some(tls) = tls else { return connection(stream, app, hosts, slot, timeout).await };
            let close = Arc::clone(&slot.close);
            let handshake = tokio::time::timeout(timeout, tokio_rustls::TlsAcceptor::from(tls.config()).accept(stream));
            let handshake = tokio::select! {
                done = handshake => done,
                // Evicted before it said anything.
                () = close.notified() => return,
            };
            match handshake {
                Ok(Ok(stream)) => connection(stream, app, hosts, slot, timeout).await,
                // A scanner, a client with the wrong CA or a plain-HTTP request: not worth a log line each.
                Ok(Err(e)) => {
                    STATS.tls_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %e, "TLS handshake failed");
                }
                Err(_) => {
                    STATS.tls_failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
}

/// `app` refusing bodies over `MAX_BODY` (413).
fn limited(app: Router) -> Router {
    app.layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
}

async fn connection<I>(io: I, app: Router, hosts: Arc<Hosts>, slot: Arc<Slot>, timeout: Duration)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let router = hyper_util::service::TowerToHyperService::new(app);
    let close = Arc::clone(&slot.close);
    let served_by = Arc::clone(&slot);
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let started = slot.busy();
        let (slot, hosts, router) = (Arc::clone(&slot), Arc::clone(&hosts), router.clone());
        async move {
            let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok());
            let response = if !started {
                // Evicted as its headers arrived: nothing runs, the connection is closing.
                refusal(StatusCode::SERVICE_UNAVAILABLE, "the daemon is at its connection limit; try again")
            } else if hosts.allows(host) {
                hyper::service::Service::call(&router, request).await?
            } else {
                STATS.wrong_host.fetch_add(1, Ordering::Relaxed);
                refusal(
                    StatusCode::MISDIRECTED_REQUEST,
                    "this daemon is not served under that Host name: use its address, or add the name with serve --name",
                )
            };
            slot.idle();
            Ok::<_, Infallible>(response)
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        // Headers of the API's requests are small: a client cannot make each connection hold
        // hyper's default ~400 KiB read buffer.
        .max_buf_size(16 * 1024)
        .max_headers(64)
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let served = tokio::select! {
        done = connection.as_mut() => done,
        () = close.notified() => {
            if !served_by.has_served() {
                return; // never asked anything: nothing to finish
            }
            // Between requests: finish a response still being written, then close.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = served {
        tracing::debug!(error = %e, "connection ended");
    }
}

fn refusal(status: StatusCode, message: &str) -> Response<axum::body::Body> {
    let body = serde_json::json!({ "error": message });
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from(body.to_string()))
        .expect("a static response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_and_one_under_it_read() {
        use tower::ServiceExt;
        let app = limited(
            Router::new()
                .route("/", axum::routing::post(|body: axum::body::Bytes| async move { body.len().to_string() })),
        );
        let post = |size: usize| Request::post("/").body(axum::body::Body::from(vec![b' '; size])).unwrap();
        assert_eq!(app.clone().oneshot(post(MAX_BODY + 1)).await.unwrap().status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(app.oneshot(post(MAX_BODY)).await.unwrap().status(), StatusCode::OK);
    }

    #[test]
    fn names_must_be_configured_but_addresses_always_pass() {
        let hosts = Hosts { names: vec!["drover.example.com".into()], loopback: false };
        for ok in [None, Some("10.0.0.1:7070"), Some("10.0.0.1"), Some("[::1]:7070"), Some("Drover.Example.com.:7070")]
        {
            assert!(hosts.allows(ok), "{ok:?}");
        }
        for bad in
            [Some("evil.example"), Some("localhost:7070"), Some("drover.example.com.evil:7070"), Some("[evil]:1")]
        {
            assert!(!hosts.allows(bad), "{bad:?}");
        }
        assert!(Hosts { names: vec![], loopback: true }.allows(Some("localhost:7070")));
    }

    #[test]
    fn at_the_cap_silent_connections_make_room_first_and_busy_ones_are_kept() {
        let slots = Arc::new(Mutex::new(Slots::default()));
        let peer = Slot::take(&slots, 3).unwrap();
        let silent = Slot::take(&slots, 3).unwrap();
        let working = Slot::take(&slots, 3).unwrap();
        // The peer asked once and now waits between requests; another is in a request.
        assert!(peer.busy());
        peer.idle();
        assert!(working.busy());
        // At the cap, the silent one makes room though the peer has been idle longer.
        let newcomer = Slot::take(&slots, 3).unwrap();
        assert!(!silent.has_served());
        assert!(!silent.busy(), "an evicted connection must not start a request");
        drop(silent);
        // The newcomer (silent) goes before the peer, whatever their age.
        let fifth = Slot::take(&slots, 3).unwrap();
        assert!(!newcomer.busy());
        drop(newcomer);
        // With no silent one left, the peer goes, gracefully; the working one never.
        assert!(fifth.busy());
        let sixth = Slot::take(&slots, 3).unwrap();
        assert!(peer.has_served(), "the peer was evicted gracefully");
        assert_eq!(slots.lock().unwrap().open, 4, "an evicted connection counts until its task ends");
        drop(peer);
        // All busy: nothing makes room, the new connection is refused.
        assert!(sixth.busy());
        assert!(Slot::take(&slots, 3).is_none());
    }
}
