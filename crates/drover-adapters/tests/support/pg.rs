//! Real PostgreSQL 15 clusters for tests: a primary `east` and, optionally, a
//! streaming standby `west` made by `pg_basebackup -R`, listening on 127.0.0.1
//! at free ports, with a password-authenticated superuser `drover`.
//!
//! PostgreSQL refuses to run as root, so every server command runs as the
//! `postgres` OS user through the same exec prefix drover's `rejoin` uses:
//! `runuser -u postgres -- env PGPORT=<port>`. The port lives in that prefix
//! (not in postgresql.conf) because pg_rewind copies postgresql.conf from the
//! new primary, and both members share one machine here.
//!
//! Everything is stopped (`pg_ctl stop -m immediate`) and removed on Drop,
//! including when a test panics.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use drover_adapters::postgres::{PostgresConfig, PostgresDatabase, PostgresMemberConfig};
use drover_core::plan::MemberHost;
use drover_core::secret::Secret;

pub const PASSWORD: &str = "drover-test-pw-7f3a9c";
const STREAM_GUARD: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replication {
    Synchronous,
    Asynchronous,
}

pub struct Node {
    pub name: &'static str,
    pub port: u16,
    pub data_dir: PathBuf,
}

impl Node {
    /// The argv prefix that runs a command as `postgres` with this node's port.
    pub fn exec(&self) -> Vec<String> {
        ["runuser", "-u", "postgres", "--", "env"]
            .map(String::from)
            .into_iter()
            .chain([format!("PGPORT={}", self.port)])
            .collect()
    }

    pub fn dsn(&self) -> String {
        format!("host=127.0.0.1 port={} user=drover password={PASSWORD} dbname=postgres", self.port)
    }

    pub fn host(&self) -> MemberHost {
        MemberHost { exec: self.exec(), data_dir: self.data_dir.clone(), bin_dir: bin_dir() }
    }
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    dir: tempfile::TempDir,
}

pub fn bin_dir() -> PathBuf {
    PathBuf::from(std::env::var("DROVER_PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into()))
}

pub fn bin(tool: &str) -> String {
    bin_dir().join(tool).display().to_string()
}

impl Cluster {
    /// One primary, `east`.
    pub fn primary() -> Cluster {
        Cluster::build(None)
    }

    /// Primary `east` and streaming standby `west`, the standby streaming before this returns.
    pub fn pair(replication: Replication) -> Cluster {
        Cluster::build(Some(replication))
    }

    fn build(standby: Option<Replication>) -> Cluster {
        for tool in ["initdb", "pg_ctl", "pg_basebackup", "pg_rewind", "postgres"] {
            assert!(
                bin_dir().join(tool).exists(),
                "{} not found: these tests need PostgreSQL 15 (Debian package postgresql-15; scripts/setup \
                 installs it) or DROVER_PG_BIN pointing at its bin directory",
                bin(tool)
            );
        }
        let dir = tempfile::Builder::new().prefix("drover-pg-").tempdir().expect("temp dir");
        chown(dir.path(), Some(uid("postgres")), Some(gid("postgres"))).expect("chown temp dir to postgres");
        let mut cluster = Cluster { nodes: Vec::new(), dir };
        let pwfile = cluster.dir.path().join("pwfile");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        chown(&pwfile, Some(uid("postgres")), None).unwrap();

        let east = cluster.add_node("east");
        cluster.as_postgres(
            &cluster.nodes[east],
            &[
                &bin("initdb"),
                "-D",
                &cluster.nodes[east].data_dir.display().to_string(),
                "-U",
                "drover",
                &format!("--pwfile={}", pwfile.display()),
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--data-checksums",
                "--no-sync",
            ],
        );
        let sync_names = if standby == Some(Replication::Synchronous) { "*" } else { "" };
        let conf = format!(
            "\n# drover test harness (the port comes from PGPORT)\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{socket}'\n\
             wal_log_hints = on\n\
             fsync = off\n\
             wal_keep_size = '256MB'\n\
             shared_buffers = '16MB'\n\
             max_connections = 30\n\
             synchronous_standby_names = '{sync_names}'\n",
            socket = cluster.dir.path().display()
        );
        append(&cluster.nodes[east].data_dir.join("postgresql.conf"), &conf);
        cluster.start("east");

        if standby.is_some() {
            let west = cluster.add_node("west");
            let primary_dsn = cluster.nodes[east].dsn();
            cluster.as_postgres(
                &cluster.nodes[west],
                &[
                    &bin("pg_basebackup"),
                    "-d",
                    &primary_dsn,
                    "-D",
                    &cluster.nodes[west].data_dir.display().to_string(),
                    "-R",
                    "-X",
                    "stream",
                    "-c",
                    "fast",
                    "--no-sync",
                ],
            );
            cluster.start("west");
            cluster.wait_streaming("west");
        }
        cluster
    }

    /// One primary, `east`, serving TLS with `cert` and `key` (PEM) and accepting TCP
    /// connections over TLS only (`hostssl`): a plain one finds no pg_hba.conf line.
    pub fn tls_primary(cert: &str, key: &str) -> Cluster {
        let cluster = Cluster::build(None);
        let east = cluster.node("east");
        let (cert_file, key_file) = (cluster.dir.path().join("server.pem"), cluster.dir.path().join("server.key"));
        for (file, text) in [(&cert_file, cert), (&key_file, key)] {
            std::fs::write(file, text).unwrap();
            chown(file, Some(uid("postgres")), Some(gid("postgres"))).unwrap();
            std::fs::set_permissions(file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        }
        append(
            &east.data_dir.join("postgresql.conf"),
            &format!(
                "\nssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
                cert_file.display(),
                key_file.display()
            ),
        );
        let hba = "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n\
                   hostssl replication all 127.0.0.1/32 scram-sha-256\n";
        std::fs::write(east.data_dir.join("pg_hba.conf"), hba).unwrap();
        cluster.stop("east");
        cluster.start("east");
        cluster
    }

    fn add_node(&mut self, name: &'static str) -> usize {
        let data_dir = self.dir.path().join(name);
        self.nodes.push(Node { name, port: free_port(), data_dir });
        self.nodes.len() - 1
    }

    pub fn node(&self, name: &str) -> &Node {
        self.nodes.iter().find(|n| n.name == name).unwrap_or_else(|| panic!("no node {name}"))
    }

    /// Runs argv as `postgres` on a member's host (its exec prefix); panics with the output on failure.
    pub fn on_host(&self, name: &str, argv: &[&str]) -> Output {
        self.as_postgres(self.node(name), argv)
    }

    /// Runs argv under the node's exec prefix and panics with its output on failure.
    fn as_postgres(&self, node: &Node, argv: &[&str]) -> Output {
        let out = run(node, argv);
        assert!(
            out.status.success(),
            "{} failed ({}):\n{}\n{}",
            argv[0],
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    pub fn start(&self, name: &str) {
        let node = self.node(name);
        let out = run(
            node,
            &[
                &bin("pg_ctl"),
                "-D",
                &node.data_dir.display().to_string(),
                "-l",
                &self.log(name).display().to_string(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start {name} failed:\n{}\n--- server log ---\n{}",
            String::from_utf8_lossy(&out.stdout),
            std::fs::read_to_string(self.log(name)).unwrap_or_default()
        );
    }

    /// Stops a member cleanly (a `pg_ctl stop -m fast`).
    pub fn stop(&self, name: &str) {
        let node = self.node(name);
        let data_dir = node.data_dir.display().to_string();
        self.as_postgres(node, &[&bin("pg_ctl"), "-D", &data_dir, "-w", "-t", "60", "stop", "-m", "fast"]);
    }

    fn wait_streaming(&self, name: &str) {
        let node = self.node(name);
        let started = Instant::now();
        loop {
            let out = run(
                node,
                &[
                    &bin("psql"),
                    "-h",
                    &self.dir.path().display().to_string(),
                    "-U",
                    "drover",
                    "-d",
                    "postgres",
                    "-Atc",
                    "SELECT status FROM pg_stat_wal_receiver",
                ],
            );
            if String::from_utf8_lossy(&out.stdout).trim() == "streaming" {
                return;
            }
            assert!(started.elapsed() < STREAM_GUARD, "{name} is not streaming after {STREAM_GUARD:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A session on a member, as an application would open one.
    pub async fn client(&self, name: &str) -> tokio_postgres::Client {
        let connector = drover_adapters::pg_connect::PgConnector::parse(&self.node(name).dsn()).expect("a valid DSN");
        connector.connect().await.unwrap_or_else(|e| panic!("connect to {name}: {e:?}"))
    }

    /// The provider under test, with every member's DSN and host.
    pub fn database(&self) -> PostgresDatabase {
        self.database_with(|_| true)
    }

    /// The provider of a synchronous plan: a rejoined standby becomes synchronous again.
    pub fn synchronous_database(&self) -> PostgresDatabase {
        self.database_of(|_| true, true)
    }

    /// The provider, giving a host only to members for which `with_host` is true.
    pub fn database_with(&self, with_host: impl Fn(&str) -> bool) -> PostgresDatabase {
        self.database_of(with_host, false)
    }

    fn database_of(&self, with_host: impl Fn(&str) -> bool, synchronous: bool) -> PostgresDatabase {
        let members: BTreeMap<String, PostgresMemberConfig> = self
            .nodes
            .iter()
            .map(|n| {
                let member =
                    PostgresMemberConfig { dsn: Secret::new(n.dsn()), host: with_host(n.name).then(|| n.host()) };
                (n.name.to_string(), member)
            })
            .collect();
        PostgresDatabase::new(PostgresConfig { synchronous, ..PostgresConfig::new(members) }).expect("valid DSNs")
    }

    /// The server log of a member, for failure messages.
    pub fn server_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.log(name)).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &self.nodes {
            let data_dir = node.data_dir.display().to_string();
            let _ = run(node, &[&bin("pg_ctl"), "-D", &data_dir, "-w", "-t", "30", "stop", "-m", "immediate"]);
        }
    }
}

fn run(node: &Node, argv: &[&str]) -> Output {
    let exec = node.exec();
    Command::new(&exec[0])
        .args(&exec[1..])
        .args(argv)
        .current_dir("/")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exec[0]))
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).expect("open config");
    f.write_all(text.as_bytes()).expect("append config");
}

/// A port free right now; servers bind it moments later.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn uid(user: &str) -> u32 {
    id_of("-u", user)
}

fn gid(user: &str) -> u32 {
    id_of("-g", user)
}

fn id_of(flag: &str, user: &str) -> u32 {
    let out = Command::new("id").args([flag, user]).output().expect("run id");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no OS user {user}: install postgresql-15, which creates it"))
}
