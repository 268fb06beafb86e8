//! AWS resources through the AWS SDK for Rust (cargo feature `aws`).
//!
//! Endpoint, region and credentials come from the standard AWS chain and
//! environment (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_PROFILE`, instance and
//! pod roles, ...), loaded once per process by [`AwsConfig`]; every service
//! client is built from it for the AWS region a plan region names.
//!
//! Every client gets the plan's deadlines (`aws.timeouts`: connect, attempt, operation),
//! so an endpoint that accepts a connection and never answers cannot hold a command.
//!
//! Messages never carry credentials: an error names the region and resource, the
//! operation, the AWS error code and message, and what to check ([`describe`]); a call
//! that timed out or got no AWS answer names the endpoint it was sent to.

pub mod aurora;
pub mod cloudwatch;
pub mod compute;
pub mod global_accelerator;
pub mod rds;
pub mod route53;
pub mod stages;

/// The SDKs, for tests and tools that set up resources.
pub use {aws_sdk_autoscaling as autoscaling_sdk, aws_sdk_eks as eks_sdk, aws_sdk_fis as fis_sdk};

use std::sync::Arc;

pub use aws_config::SdkConfig;
use aws_config::timeout::TimeoutConfig;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use drover_core::error::ProviderError;
use drover_core::plan::AwsTimeouts;
use tokio::sync::OnceCell;

/// The SDK's HTTP client on rustls with ring (the workspace's crypto provider), no aws-lc.
pub fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// The standard AWS configuration, loaded when first needed and shared by every client.
pub struct AwsConfig {
    sdk: OnceCell<SdkConfig>,
    timeouts: AwsTimeouts,
}

impl AwsConfig {
    /// Loads from the environment, profile and instance role on first use, with the default
    /// timeouts ([`AwsTimeouts::default`]).
    pub fn from_env() -> Arc<AwsConfig> {
        AwsConfig::from_env_with(AwsTimeouts::default())
    }

    /// As [`AwsConfig::from_env`], every call bounded by `timeouts` (the plan's `aws.timeouts`).
    pub fn from_env_with(timeouts: AwsTimeouts) -> Arc<AwsConfig> {
        Arc::new(AwsConfig { sdk: OnceCell::new(), timeouts })
    }

    /// A configuration built elsewhere (tests), used as it is.
    pub fn with(sdk: SdkConfig) -> Arc<AwsConfig> {
        note_endpoint(&sdk);
        Arc::new(AwsConfig { sdk: OnceCell::new_with(Some(sdk)), timeouts: AwsTimeouts::default() })
    }

    pub async fn sdk(&self) -> &SdkConfig {
        self.sdk
            .get_or_init(|| async {
                let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .http_client(https_client())
                    .timeout_config(timeout_config(self.timeouts))
                    .load()
                    .await;
                note_endpoint(&sdk);
                sdk
            })
            .await
    }
}

/// The endpoint URL of the AWS configuration in use (`AWS_ENDPOINT_URL`, or `endpoint_url`
/// in the profile), for messages: an error is described from the SDK's error alone, which
/// does not say where the request went. A drover process has one AWS configuration.
static CONFIGURED_ENDPOINT: std::sync::RwLock<Option<String>> = std::sync::RwLock::new(None);

fn note_endpoint(sdk: &SdkConfig) {
    if let Some(url) = sdk.endpoint_url() {
        *CONFIGURED_ENDPOINT.write().unwrap_or_else(|p| p.into_inner()) = Some(url.to_owned());
    }
}

/// The SDK's deadlines from the plan's. Without an operation or attempt timeout the SDK
/// waits for an answer forever (only connecting is bounded by default), which is how a
/// `drover status` against an endpoint that accepted the connection and then said nothing
/// ran for a quarter of an hour. The connect timeout also bounds the credential chain's
/// own calls (instance metadata, STS), which use the same configuration.
pub fn timeout_config(t: AwsTimeouts) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(t.connect)
        .operation_attempt_timeout(t.attempt)
        .operation_timeout(t.operation)
        .build()
}

/// Clients of one AWS service, one per AWS region, built from the shared configuration
/// the first time a region is asked for and reused after.
pub struct RegionalClients<C> {
    config: Arc<AwsConfig>,
    build: fn(&SdkConfig, aws_config::Region) -> C,
    clients: std::sync::Mutex<std::collections::HashMap<String, C>>,
}

impl<C: Clone> RegionalClients<C> {
    /// `build` makes the service's client for a region, e.g.
    /// `|sdk, region| eks::Client::from_conf(eks::config::Builder::from(sdk).region(region).build())`.
    pub fn new(config: Arc<AwsConfig>, build: fn(&SdkConfig, aws_config::Region) -> C) -> Self {
        RegionalClients { config, build, clients: Default::default() }
    }

    pub async fn get(&self, aws_region: &str) -> C {
        if let Some(client) = self.clients.lock().unwrap_or_else(|p| p.into_inner()).get(aws_region) {
            return client.clone();
        }
        let client = (self.build)(self.config.sdk().await, aws_config::Region::new(aws_region.to_owned()));
        self.clients.lock().unwrap_or_else(|p| p.into_inner()).insert(aws_region.to_owned(), client.clone());
        client
    }
}

/// One AWS service, as errors and IAM policies name it.
#[derive(Clone, Copy, Debug)]
pub struct Service {
    /// For people: "Route 53", "RDS".
    pub name: &'static str,
    /// The IAM action prefix: "route53", "rds".
    pub iam: &'static str,
    /// What to check for a service-specific error code; `None` falls back to a generic hint.
    /// The flag says whether the code is transient (the step retries).
    pub hint: fn(operation: &str, code: &str) -> Option<(String, bool)>,
}

impl Service {
    /// The endpoint a call in `aws_region` goes to, as the SDK picks it: the service's own
    /// `AWS_ENDPOINT_URL_<SERVICE>`, else the configuration's endpoint (`AWS_ENDPOINT_URL`),
    /// else AWS's regional endpoint. For messages only.
    pub fn endpoint(&self, aws_region: &str) -> String {
        let configured = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let ignored = configured("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if !ignored {
            let own = format!("AWS_ENDPOINT_URL_{}", self.name.to_ascii_uppercase().replace(' ', "_"));
            let noted = || CONFIGURED_ENDPOINT.read().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some(url) = configured(&own).or_else(|| configured("AWS_ENDPOINT_URL")).or_else(noted) {
                return url;
            }
        }
        match self.iam {
            // Global services: Route 53 has one endpoint, Global Accelerator's API lives in us-west-2.
            "route53" => "https://route53.amazonaws.com".to_owned(),
            "globalaccelerator" => "https://globalaccelerator.us-west-2.amazonaws.com".to_owned(),
            // CloudWatch's endpoint keeps the service's old name.
            "cloudwatch" => format!("https://monitoring.{aws_region}.amazonaws.com"),
            prefix => format!("https://{prefix}.{aws_region}.amazonaws.com"),
        }
    }
}

/// The AWS region a message's resource names first (`us-east-2/shop-db` -> `us-east-2`).
fn region_of(resource: &str) -> &str {
    resource.split('/').next().unwrap_or(resource)
}

/// `<region>/<resource>: <operation> failed: <code>: <message> — <what to check>`.
/// Throttling and network trouble are transient (the step retries); the rest is permanent.
/// A call that timed out, could not connect, or got an answer that is not the service's
/// says so and names the endpoint, since that is what to look at. The SDK's error is kept
/// as the error's source.
pub fn describe<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
    service: Service,
    operation: &str,
    resource: &str,
    e: SdkError<E, HttpResponse>,
) -> ProviderError {
    describe_with(service, operation, resource, e, &|_| None)
}

/// [`describe`], with `own_hint` asked first for an AWS error code (e.g. one that can name the
/// plan field of this very resource); codes it does not know get the usual hints (throttling,
/// access, then the service's).
pub fn describe_with<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
    service: Service,
    operation: &str,
    resource: &str,
    e: SdkError<E, HttpResponse>,
    own_hint: &dyn Fn(&str) -> Option<(String, bool)>,
) -> ProviderError {
    let error = describe_text(service, operation, resource, &e, own_hint);
    error.with_source(e)
}

/// [`describe_with`] for a failure the caller counts as the resource being out of reach (the
/// network, a timeout, the service down, or gone): transient whatever the code, since the
/// caller waits or skips rather than stops; the SDK's error is kept as the source.
pub fn describe_unreachable<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
    service: Service,
    operation: &str,
    resource: &str,
    e: SdkError<E, HttpResponse>,
    own_hint: &dyn Fn(&str) -> Option<(String, bool)>,
) -> ProviderError {
    let message = describe_text(service, operation, resource, &e, own_hint).message;
    ProviderError::transient(message).with_source(e)
}

/// [`describe_with`]'s message and kind, without the source.
fn describe_text<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
    service: Service,
    operation: &str,
    resource: &str,
    e: &SdkError<E, HttpResponse>,
    own_hint: &dyn Fn(&str) -> Option<(String, bool)>,
) -> ProviderError {
    let endpoint = || service.endpoint(region_of(resource));
    let timed_out = match e {
        SdkError::TimeoutError(_) => true,
        SdkError::DispatchFailure(d) => d.is_timeout(),
        _ => false,
    };
    if timed_out {
        let endpoint = endpoint();
        return ProviderError::transient(format!(
            "{resource}: {operation} timed out: no answer from {endpoint} ({}) — check that {endpoint} is reachable from here and is the {} API (AWS_ENDPOINT_URL, when set, sends drover there); if the API is slow but answers, raise aws.timeouts in the plan",
            crate::errors::chain(e),
            service.name
        ));
    }
    if let SdkError::DispatchFailure(_) = e {
        return ProviderError::transient(format!(
            "{resource}: {operation} failed: cannot reach {}: {} — check the network, and AWS_ENDPOINT_URL if it is set",
            endpoint(),
            crate::errors::chain(e)
        ));
    }
    let Some(code) = e.code() else {
        return no_code(service, operation, resource, e, &endpoint());
    };
    let cause = match e.message() {
        Some(message) => format!("{code}: {message}"),
        None => code.to_owned(),
    };
    let (hint, transient) = own_hint(code).unwrap_or_else(|| hint(service, operation, code));
    let message = format!("{resource}: {operation} failed: {cause} — {hint}");
    if transient { ProviderError::transient(message) } else { ProviderError::permanent(message) }
}

/// An error without an AWS error code: either the answer was not the service's (an HTTP
/// status from something else at that address, a proxy, a wrong AWS_ENDPOINT_URL), or there
/// was no answer to read at all. "Check the resource names" would send people the wrong way.
fn no_code<E: std::error::Error + Send + Sync + 'static>(
    service: Service,
    operation: &str,
    resource: &str,
    e: &SdkError<E, HttpResponse>,
    endpoint: &str,
) -> ProviderError {
    let Some(response) = e.raw_response() else {
        return ProviderError::permanent(format!(
            "{resource}: {operation} failed: {} — no answer from {endpoint} to read; check AWS_ENDPOINT_URL if it is set",
            crate::errors::chain(e)
        ));
    };
    let status = response.status().as_u16();
    let message = format!(
        "{resource}: {operation} failed: HTTP {status} with no AWS error code — {endpoint} did not answer as the {} API would; check that AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_{}), if set, points at {}, or unset it to use AWS",
        service.name,
        service.name.to_ascii_uppercase().replace(' ', "_"),
        service.name
    );
    // A gateway or proxy in trouble (502, 503, 504) may recover by itself; anything else will not.
    if (500..600).contains(&status) { ProviderError::transient(message) } else { ProviderError::permanent(message) }
}

fn hint(service: Service, operation: &str, code: &str) -> (String, bool) {
    match code {
        "Throttling"
        | "ThrottlingException"
        | "TooManyRequestsException"
        | "RequestLimitExceeded"
        | "PriorRequestNotComplete"
        | "ServiceUnavailable"
        | "ServiceUnavailableException"
        | "InternalFailure"
        | "InternalServiceError" => (format!("{} is throttling or busy; the step retries", service.name), true),
        "AccessDenied"
        | "AccessDeniedException"
        | "UnauthorizedOperation"
        | "InvalidClientTokenId"
        | "UnrecognizedClientException"
        | "SignatureDoesNotMatch"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "MissingAuthenticationToken"
        | "AuthFailure" => (
            format!(
                "check the credentials drover runs with (AWS_PROFILE, AWS_ACCESS_KEY_ID or the instance role) and that its IAM policy allows {}:{operation} here ('drover plan iam' prints the policy)",
                service.iam
            ),
            false,
        ),
        _ => (service.hint)(operation, code).unwrap_or_else(|| {
            (format!("check the plan's {} resource names against the account", service.name), false)
        }),
    }
}

pub use crate::deadline::before;

/// A request the SDK refused to build: always drover's bug or a plan value the API cannot take.
/// The SDK's error is kept as the source.
pub fn build_error(service: Service, e: impl std::error::Error + Send + Sync + 'static) -> ProviderError {
    ProviderError::permanent(format!("{}: cannot build the request: {e}", service.name)).with_source(e)
}
