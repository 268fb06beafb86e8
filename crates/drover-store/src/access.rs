//! How drover reaches etcd, in one place: the members, TLS (the CA that signed the
//! members' certificates, and a client certificate when they ask for one) and a user.
//! Every connection drover makes to etcd (journal, vantage reports, leader election,
//! the lab's and people's looks at the cluster) is made by `EtcdClient::connect`.
//!
//! A user's token is short-lived on etcd's side: a simple token dies after
//! `--auth-token-ttl` (300 s by default) without use on a member, on every member
//! that restarts, and on every member when the user's password changes. etcd-client
//! authenticates once, at connect, and never again; so every request drover makes
//! goes through `EtcdClient`, which authenticates again and repeats the request once
//! when etcd says the token is no longer valid. A daemon that runs for days keeps working.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use drover_core::StoreError;
use drover_core::secret::Secret;
use etcd_client::{
    CampaignResponse, Client, ConnectOptions, GetOptions, GetResponse, LeaderResponse, LeaseGrantOptions,
    LeaseGrantResponse, MemberListResponse, MoveLeaderResponse, PutOptions, PutResponse, StatusResponse, Txn,
    TxnResponse,
};

/// How long a request is retried while etcd elects a raft leader ("leader changed",
/// "no leader", a member gone silent): a few election timeouts.
pub(crate) const ELECTION_PATIENCE: Duration = Duration::from_secs(8);

/// Errors that say "not now" rather than "no": retried within `ELECTION_PATIENCE`.
pub(crate) fn transient(e: &etcd_client::Error) -> bool {
    if tls_refused(e) {
        return false;
    }
    match e {
        // "Timeout expired": the request's own timeout, e.g. authenticating through a
        // member that has just rejoined and has no leader yet.
        etcd_client::Error::GRpcStatus(status) => {
            matches!(status.code(), tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Aborted)
                || [
                    "leader changed",
                    "no leader",
                    "timed out",
                    "Timeout expired",
                    "too many requests",
                    "transport error",
                    "broken pipe",
                    // The member closed the connection (an HTTP/2 GOAWAY, e.g. too_many_pings
                    // on a connection left idle): the next request opens a new one.
                    "h2 protocol error",
                ]
                .iter()
                .any(|m| status.message().contains(m))
        }
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        _ => false,
    }
}

/// A TLS handshake that failed over a certificate fails again: not worth waiting for.
fn tls_refused(e: &etcd_client::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        let text = s.to_string().to_lowercase();
        if text.contains("certificate") || text.contains("unknownissuer") {
            return true;
        }
        source = s.source();
    }
    false
}

/// Runs `op` until it succeeds, fails for good, or `ELECTION_PATIENCE` has passed.
pub(crate) async fn patiently<T, F, Fut>(mut op: F) -> Result<T, etcd_client::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
{
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(100);
    loop {
        match op().await {
            Err(e) if transient(&e) && started.elapsed() + pause < ELECTION_PATIENCE => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(800));
            }
            other => return other,
        }
    }
}

/// The members of an etcd cluster and how to prove who we are to them.
#[derive(Clone, Debug)]
pub struct EtcdAccess {
    /// `HOST:PORT` of each member (no scheme: TLS or not is `tls`'s to say).
    pub members: Vec<String>,
    pub tls: Option<EtcdTls>,
    pub user: Option<EtcdUser>,
}

/// TLS towards etcd: only members whose certificate `ca` signed (for the address
/// dialled) are trusted; `identity` is presented when they ask for a client certificate.
#[derive(Clone)]
pub struct EtcdTls {
    ca_file: PathBuf,
    ca: Vec<u8>,
    identity: Option<(PathBuf, Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for EtcdTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdTls")
            .field("ca", &self.ca_file)
            .field("cert", &self.identity.as_ref().map(|(cert, _, _)| cert))
            .finish()
    }
}

/// An etcd user and its password (never printed: `Secret`).
#[derive(Clone, Debug)]
pub struct EtcdUser {
    pub name: String,
    pub password: Secret,
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !String::from_utf8_lossy(&bytes).contains("-----BEGIN ") {
        return Err(format!("{}: not a PEM file (expected -----BEGIN ...-----)", path.display()));
    }
    Ok(bytes)
}

impl EtcdTls {
    /// Reads the CA file and, given, the client certificate and its key; an error names the file.
    pub fn load(ca: &Path, identity: Option<(&Path, &Path)>) -> Result<EtcdTls, String> {
        let identity = match identity {
            Some((cert, key)) => Some((cert.to_path_buf(), read(cert)?, read(key)?)),
            None => None,
        };
        Ok(EtcdTls { ca_file: ca.to_path_buf(), ca: read(ca)?, identity })
    }

    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    fn options(&self) -> etcd_client::TlsOptions {
        let tls = etcd_client::TlsOptions::new().ca_certificate(etcd_client::Certificate::from_pem(&self.ca));
        match &self.identity {
            Some((_, cert, key)) => tls.identity(etcd_client::Identity::from_pem(cert, key)),
            None => tls,
        }
    }
}

impl EtcdAccess {
    /// Members reached over plain HTTP, without a user (a test's etcd, a private network).
    pub fn plain(members: impl IntoIterator<Item = impl Into<String>>) -> EtcdAccess {
        EtcdAccess { members: members.into_iter().map(Into::into).collect(), tls: None, user: None }
    }

    /// The same TLS and user, towards other members (some of the cluster's, say).
    pub fn towards(&self, members: impl IntoIterator<Item = impl Into<String>>) -> EtcdAccess {
        EtcdAccess { members: members.into_iter().map(Into::into).collect(), ..self.clone() }
    }

    /// The members' client URLs, `https://` with TLS.
    pub fn urls(&self) -> Vec<String> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        self.members.iter().map(|m| format!("{scheme}://{m}")).collect()
    }

    /// The members as messages name them.
    pub fn describe(&self) -> String {
        self.urls().join(",")
    }
}

/// A connection to etcd whose requests survive the token's end (see the module's notes).
/// It derefs to the etcd-client `Client` for what needs no token (leases).
#[derive(Clone)]
pub struct EtcdClient {
    client: Client,
    access: EtcdAccess,
    /// A token was had (shared by the clones, like the token itself). Until then every
    /// request authenticates first: etcd would judge a request without a token as the
    /// client certificate's name, or as nobody.
    authenticated: Arc<AtomicBool>,
}

impl std::ops::Deref for EtcdClient {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl std::ops::DerefMut for EtcdClient {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

/// How every drover connection to etcd is set up. HTTP/2 keep-alive pings find a
/// member that went silent (its region was cut off) within about a second, so the
/// client stops sending requests there instead of waiting out each timeout.
pub fn options(connect: Duration) -> ConnectOptions {
    ConnectOptions::new()
        .with_connect_timeout(connect)
        .with_keep_alive(Duration::from_millis(500), Duration::from_millis(1000))
        .with_keep_alive_while_idle(true)
}

/// True when etcd refused the request's token (expired, unknown to a member that
/// restarted, dropped by a password change) or its auth revision: a new token fixes it.
pub fn token_refused(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(status) => {
            status.code() == tonic::Code::Unauthenticated
                || ["invalid auth token", "auth store is old", "revision in header is old"]
                    .iter()
                    .any(|m| status.message().contains(m))
        }
        _ => false,
    }
}

/// Every cause of an etcd-client error, outermost first: its own Display says only
/// "transport error" where the cause (a certificate, a refused connection) is deeper.
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

impl EtcdAccess {
    /// An etcd-client error in a person's words, with what to check when the cause is
    /// TLS or the user. Never holds the password: etcd does not echo it, nor do we.
    pub fn explain(&self, e: &etcd_client::Error) -> String {
        let text = causes(e);
        match self.hint(&text) {
            Some(hint) => format!("{hint} ({text})"),
            None => text,
        }
    }

    /// What to check for an error whose causes read `text`, when TLS or the user is the cause.
    pub fn hint(&self, text: &str) -> Option<String> {
        let lower = text.to_lowercase();
        let hint = if lower.contains("unknownissuer") || lower.contains("unknown issuer") {
            match &self.tls {
                Some(tls) => format!(
                    "the members' certificates are not signed by the CA in {} (--etcd-ca): give the CA that signed them",
                    tls.ca_file.display()
                ),
                None => "the members' certificates are not trusted".into(),
            }
        } else if lower.contains("notvalidforname") || lower.contains("not valid for name") {
            "a member's certificate does not name the address dialled: its certificate must list it (IP or DNS SAN)"
                .into()
        } else if ["certificaterequired", "certificate required", "badcertificate", "bad certificate"]
            .iter()
            .any(|m| lower.contains(m))
        {
            match self.tls.as_ref().and_then(|t| t.identity.as_ref()) {
                None => "the members require a client certificate: give --etcd-cert and --etcd-key".into(),
                Some((cert, _, _)) => format!(
                    "the members refused the client certificate {}: it must be signed by a CA they trust (their --trusted-ca-file)",
                    cert.display()
                ),
            }
        } else if self.tls.as_ref().is_some_and(|t| t.identity.is_none())
            && ["connection closed", "canceled", "broken pipe", "connection reset", "connectionreset"]
                .iter()
                .any(|m| lower.contains(m))
        {
            // Under TLS 1.3 a member that wants a client certificate says so only by closing.
            "the members closed the connection: if they want a client certificate (etcd --client-cert-auth), give --etcd-cert and --etcd-key".into()
        } else if lower.contains("invalid user id or password") || lower.contains("authentication failed") {
            match &self.user {
                Some(user) => format!(
                    "etcd refused user '{}': wrong password (or no such user); check --etcd-password-file or DROVER_ETCD_PASSWORD",
                    user.name
                ),
                None => "etcd refused the user".into(),
            }
        } else if lower.contains("user name is empty") || (self.user.is_none() && lower.contains("invalid auth token"))
        {
            "etcd requires a user (its auth is enabled): give --etcd-user and its password (--etcd-password-file or DROVER_ETCD_PASSWORD)".into()
        } else if lower.contains("permission denied") {
            match &self.user {
                Some(user) => format!("etcd user '{}' may not use these keys: grant its role the prefix", user.name),
                None => "permission denied".into(),
            }
        } else if self.tls.is_none()
            && ["connection reset", "connectionreset", "broken pipe", "h2 protocol"].iter().any(|m| lower.contains(m))
        {
            "if the members serve TLS, write etcds:// and give --etcd-ca".into()
        } else if self.tls.is_some() && (lower.contains("invalidcontenttype") || lower.contains("corrupt message")) {
            "the members do not seem to serve TLS: write etcd:// (without --etcd-ca)".into()
        } else if lower.contains("timeout expired") || lower.contains("deadline exceeded") {
            // The connection stands, and nothing comes back: a member stopped, overloaded
            // or cut off by a half-open link. The request's own timeout ended the wait.
            "no answer within the request's timeout: check that the members are up and answer ('etcdctl endpoint health' from this host) and that nothing between here and them drops packets".into()
        } else {
            return None;
        };
        Some(hint)
    }

    /// The causes of `e`, outermost first.
    pub fn causes(e: &etcd_client::Error) -> String {
        causes(e)
    }

    /// `e` as a store error: TLS and user problems say what to check; an unreachable
    /// cluster says so plainly.
    pub fn failure(&self, what: &str, e: etcd_client::Error) -> StoreError {
        let causes = causes(&e);
        let message = match (&e, self.hint(&causes)) {
            (_, Some(hint)) => format!("etcd {}: {what}: {hint} ({causes})", self.describe()),
            (etcd_client::Error::GRpcStatus(status), None) if status.code() == tonic::Code::Unavailable => format!(
                "etcd {}: cannot connect ({}); is the cluster up and reachable from here?",
                self.describe(),
                status.message()
            ),
            (_, None) => format!("etcd {}: {what}: {causes}", self.describe()),
        };
        StoreError::io_from(message, e)
    }
}

impl EtcdClient {
    /// Connects with `options` (timeouts, keep-alive) and, with a user, authenticates (a
    /// request through raft). A refusal (a wrong password, a certificate) fails here; etcd
    /// saying "not now" or out of reach does not: the first request authenticates then
    /// (and is retried like any other), so a daemon starts while etcd is away, as it does
    /// without a user.
    pub async fn connect(access: &EtcdAccess, mut options: ConnectOptions) -> Result<EtcdClient, StoreError> {
        if let Some(tls) = &access.tls {
            options = options.with_tls(tls.options());
        }
        // No user in the options: etcd-client would authenticate inside `connect` and fail
        // it when etcd is out of reach; `authenticate` does it instead.
        let client =
            Client::connect(access.urls(), Some(options)).await.map_err(|e| access.failure("cannot connect", e))?;
        let client = EtcdClient { client, access: access.clone(), authenticated: Arc::new(AtomicBool::new(false)) };
        match client.authenticate().await {
            Err(e) if !transient(&e) => Err(access.failure("cannot connect", e)),
            _ => Ok(client),
        }
    }

    /// Gets a new token for the user (none without one). Every clone of the connection
    /// shares the token; `update_user` on a clone of our own sets it without leaving the
    /// user in the connection's options, where etcd-client could use it on its own.
    async fn authenticate(&self) -> Result<(), etcd_client::Error> {
        let Some(user) = &self.access.user else { return Ok(()) };
        self.client.clone().update_user(Some((user.name.clone(), user.password.expose().to_string()))).await?;
        self.authenticated.store(true, Ordering::SeqCst);
        Ok(())
    }

    pub fn access(&self) -> &EtcdAccess {
        &self.access
    }

    /// `e` as a store error, its cause explained.
    pub fn failure(&self, what: &str, e: etcd_client::Error) -> StoreError {
        self.access.failure(what, e)
    }

    /// Runs `op`; when etcd refused its token, authenticates again and runs it once more.
    pub async fn with_token<T, F, Fut>(&self, mut op: F) -> Result<T, etcd_client::Error>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        if self.access.user.is_some() && !self.authenticated.load(Ordering::SeqCst) {
            // No token yet: etcd was out of reach at connect.
            self.authenticate().await?;
        }
        match op(self.client.clone()).await {
            Err(e) if self.access.user.is_some() && token_refused(&e) => {
                tracing::debug!(etcd = %self.access.describe(), "etcd refused the token; authenticating again");
                self.authenticate().await?;
                op(self.client.clone()).await
            }
            other => other,
        }
    }

    pub async fn get(
        &self,
        key: impl Into<Vec<u8>>,
        options: Option<GetOptions>,
    ) -> Result<GetResponse, etcd_client::Error> {
        let key = key.into();
        self.with_token(|mut c| {
            let (key, options) = (key.clone(), options.clone());
            async move { c.get(key, options).await }
        })
        .await
    }

    pub async fn put(
        &self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        options: Option<PutOptions>,
    ) -> Result<PutResponse, etcd_client::Error> {
        let (key, value) = (key.into(), value.into());
        self.with_token(|mut c| {
            let (key, value, options) = (key.clone(), value.clone(), options.clone());
            async move { c.put(key, value, options).await }
        })
        .await
    }

    pub async fn txn(&self, txn: Txn) -> Result<TxnResponse, etcd_client::Error> {
        self.with_token(|mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })
        .await
    }

    /// Leases need no token (etcd-client sends none); here so that every call reads alike.
    pub async fn lease_grant(
        &self,
        ttl: i64,
        options: Option<LeaseGrantOptions>,
    ) -> Result<LeaseGrantResponse, etcd_client::Error> {
        self.client.clone().lease_grant(ttl, options).await
    }

    /// Campaigns for `name` with `lease`. A campaign waits for as long as another
    /// candidate leads, and etcd checks its token again only when that one resigns:
    /// by then the token may have died. Campaigning again with the same lease finds the
    /// candidate's key in place (etcd names it after the lease), so its turn is kept.
    pub async fn campaign(&self, name: &str, value: &str, lease: i64) -> Result<CampaignResponse, etcd_client::Error> {
        self.with_token(|mut c| async move { c.campaign(name, value, lease).await }).await
    }

    pub async fn leader(&self, name: &str) -> Result<LeaderResponse, etcd_client::Error> {
        self.with_token(|mut c| async move { c.leader(name).await }).await
    }

    pub async fn status(&self) -> Result<StatusResponse, etcd_client::Error> {
        self.with_token(|mut c| async move { c.status().await }).await
    }

    pub async fn member_list(&self) -> Result<MemberListResponse, etcd_client::Error> {
        self.with_token(|mut c| async move { c.member_list().await }).await
    }

    pub async fn move_leader(&self, target: u64) -> Result<MoveLeaderResponse, etcd_client::Error> {
        self.with_token(|mut c| async move { c.move_leader(target).await }).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An idle connection the member closed (GOAWAY too_many_pings) is asked again on a new
    /// one; a refused request is not.
    #[test]
    fn a_connection_the_member_closed_is_transient() {
        let closed = tonic::Status::new(tonic::Code::ResourceExhausted, "h2 protocol error: http2 error");
        assert!(transient(&etcd_client::Error::GRpcStatus(closed)));
        let too_big = tonic::Status::new(tonic::Code::ResourceExhausted, "grpc: received message larger than max");
        assert!(!transient(&etcd_client::Error::GRpcStatus(too_big)));
    }
}
