//! The API's TLS settings, re-read when their files change: a certificate renewed
//! in place (cert-manager, an ACME client, an operator's `cp`) is served from the
//! next connection on, with no restart and so no gap in the daemon's vote. A file
//! that cannot be read or does not match keeps the settings in force and says so
//! once in the log; the daemon never stops serving because of a bad rotation.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::app::error::Failure;

/// How often the files' modification times are looked at, at most.
const LOOK_EVERY: Duration = Duration::from_secs(1);

pub struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
    state: Mutex<State>,
}

struct State {
    config: Arc<rustls::ServerConfig>,
    /// Modification times the config was read at.
    read_at: Vec<Option<SystemTime>>,
    looked: Instant,
    /// The last reload's error, logged once.
    failed: Option<String>,
}

impl TlsFiles {
    /// Reads the files now: a bad file at start is bad input (exit 2).
    pub fn load(cert: PathBuf, key: PathBuf, client_ca: Option<PathBuf>) -> Result<TlsFiles, Failure> {
        let read_at = mtimes(&cert, &key, client_ca.as_ref());
        let config = drover_adapters::tls::server_config(&cert, &key, client_ca.as_deref())
            .map_err(|e| Failure::input(format!("--tls-cert/--tls-key/--client-ca: {e}")))?;
        let state = State { config: Arc::new(config), read_at, looked: Instant::now(), failed: None };
        Ok(TlsFiles { cert, key, client_ca, state: Mutex::new(state) })
    }

    /// The settings for a new connection: re-read first if a file changed since.
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        let mut state = super::supervisor::unpoisoned(&self.state);
        if state.looked.elapsed() < LOOK_EVERY {
            return Arc::clone(&state.config);
        }
        state.looked = Instant::now();
        let now = mtimes(&self.cert, &self.key, self.client_ca.as_ref());
        if now == state.read_at {
            return Arc::clone(&state.config);
        }
        match drover_adapters::tls::server_config(&self.cert, &self.key, self.client_ca.as_deref()) {
            Ok(config) => {
                tracing::info!(cert = %self.cert.display(), "TLS certificate re-read: new connections use it");
                state.config = Arc::new(config);
                state.read_at = now;
                state.failed = None;
            }
            Err(e) => {
                // A certificate written before its key, say: tried again on the next look.
                let e = e.to_string();
                if state.failed.as_ref() != Some(&e) {
                    tracing::error!(error = %e, "changed TLS files cannot be used; still serving the previous certificate");
                    state.failed = Some(e);
                }
            }
        }
        Arc::clone(&state.config)
    }
}

fn mtimes(cert: &PathBuf, key: &PathBuf, client_ca: Option<&PathBuf>) -> Vec<Option<SystemTime>> {
    [Some(cert), Some(key), client_ca]
        .into_iter()
        .flatten()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}
