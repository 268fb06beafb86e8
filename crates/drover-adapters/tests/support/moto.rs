//! A real moto server (PyPI `moto[server]`, installed by scripts/setup.sh into
//! /opt/drover-moto) on a free loopback port, one per test binary or test;
//! killed on drop. AWS clients reach it through `AWS_ENDPOINT_URL` and dummy
//! credentials, as a user would point drover anywhere.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use drover_adapters::route53::sdk;
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

impl Moto {
    pub fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(server())
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
            .http_client(drover_adapters::route53::https_client())
            .build();
        sdk::Client::from_conf(config)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
