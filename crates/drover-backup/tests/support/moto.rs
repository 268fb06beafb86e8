//! A real moto server (scripts/setup.sh installs it into /opt/drover-moto) on a free
//! loopback port, for S3; killed on drop. The same server the adapters' AWS tests use
//! (crates/drover-adapters/tests/support/moto.rs), without their AWS SDK clients.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use drover_backup::BackupStore;

pub struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    pub fn start() -> Moto {
        // reqwest is built with rustls and no crypto provider of its own: drover's binary installs ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let server = std::env::var_os("DROVER_MOTO_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/opt/drover-moto/bin/moto_server"));
        assert!(server.exists(), "{} not found: run scripts/setup.sh, or set DROVER_MOTO_SERVER", server.display());
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not listen within 60s");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, port }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A store in a new bucket `bucket`, under a prefix as a plan's store would be.
    pub async fn store(&self, name: &str, bucket: &str) -> BackupStore {
        // moto does not check signatures: an unsigned PUT makes the bucket.
        let made = reqwest::Client::new().put(format!("{}/{bucket}", self.endpoint())).send().await.unwrap();
        assert!(made.status().is_success(), "create bucket {bucket}: {}", made.status());
        // Dummy credentials, set on the builder rather than in the shared environment.
        let s3 = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .with_access_key_id("AKIAMOTOTESTKEY00001")
            .with_secret_access_key("moto-test-secret")
            .build()
            .unwrap();
        let prefixed = object_store::prefix::PrefixStore::new(s3, "drover/shop");
        BackupStore::new(name, std::sync::Arc::new(prefixed))
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
