//! AWS resources through the AWS SDK for Rust (cargo feature `aws`).
//!
//! Endpoint, region and credentials come from the standard AWS chain and
//! environment (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_PROFILE`, instance and
//! pod roles, ...), loaded once per process by [`AwsConfig`]; every service
//! client is built from it for the AWS region a plan region names.
//!
//! Messages never carry credentials: an error names the region and resource, the
//! operation, the AWS error code and message, and what to check ([`describe`]).

pub mod aurora;
pub mod cloudwatch;
pub mod compute;
pub mod global_accelerator;
pub mod rds;
pub mod route53;
pub mod stages;

/// The SDKs, for tests and tools that set up resources.
pub use {aws_sdk_autoscaling as autoscaling_sdk, aws_sdk_eks as eks_sdk};

use std::sync::Arc;

pub use aws_config::SdkConfig;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use drover_core::error::ProviderError;
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
}

impl AwsConfig {
    /// Loads from the environment, profile and instance role on first use.
    pub fn from_env() -> Arc<AwsConfig> {
        Arc::new(AwsConfig { sdk: OnceCell::new() })
    }

    /// A configuration built elsewhere (tests).
    pub fn with(sdk: SdkConfig) -> Arc<AwsConfig> {
        Arc::new(AwsConfig { sdk: OnceCell::new_with(Some(sdk)) })
    }

    pub async fn sdk(&self) -> &SdkConfig {
        self.sdk
            .get_or_init(|| async {
                aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https_client()).load().await
            })
            .await
    }
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

/// `<region>/<resource>: <operation> failed: <code>: <message> — <what to check>`.
/// Throttling and network trouble are transient (the step retries); the rest is permanent.
pub fn describe<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static, R: std::fmt::Debug>(
    service: Service,
    operation: &str,
    resource: &str,
    e: &SdkError<E, R>,
) -> ProviderError {
    let (cause, hint, transient) = match e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => (
            crate::probe::chain(e),
            format!("cannot reach {} — check the network, and AWS_ENDPOINT_URL if it is set", service.name),
            true,
        ),
        _ => {
            let code = e.code().unwrap_or("unknown error");
            let cause = match e.message() {
                Some(message) => format!("{code}: {message}"),
                None => code.to_owned(),
            };
            let (hint, transient) = hint(service, operation, code);
            (cause, hint, transient)
        }
    };
    let message = format!("{resource}: {operation} failed: {cause} — {hint}");
    if transient { ProviderError::transient(message) } else { ProviderError::permanent(message) }
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

/// A request the SDK refused to build: always drover's bug or a plan value the API cannot take.
pub fn build_error(service: Service, e: impl std::fmt::Display) -> ProviderError {
    ProviderError::permanent(format!("{}: cannot build the request: {e}", service.name))
}
