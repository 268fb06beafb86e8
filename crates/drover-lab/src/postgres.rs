//! The lab's PostgreSQL pair: a primary in east made by initdb, a streaming standby in west
//! made by pg_basebackup, both run as the postgres OS user inside their region.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use drover_adapters::pg_connect::PgConnector;

use crate::LabError;
use crate::layout::{LabDir, PG_BIN_DIR, PG_PORT, PG_SUPERUSER, REGIONS, Role, SUBNET};
use crate::state::Replication;
use crate::sys;

/// The libpq URL of a region's database (it holds the password: stored mode 0600), over
/// TLS that checks the server's certificate against the lab CA and its address.
pub fn dsn(address: Ipv4Addr, password: &str, ca: &Path) -> String {
    format!(
        "postgresql://{PG_SUPERUSER}:{password}@{address}:{PG_PORT}/postgres?sslmode=verify-full&sslrootcert={}",
        encode(&ca.display().to_string())
    )
}

/// Percent-encodes all but RFC 3986's unreserved characters and `/` (a path stays readable).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Settings shared by every member, appended to `postgresql.conf`. The region's own settings
/// come last from `../region.conf`, outside the data dir, so copies of the data dir
/// (pg_basebackup, pg_rewind) never carry one region's address into another.
pub fn common_conf() -> String {
    "\n# drover lab\n\
     wal_level = replica\n\
     wal_log_hints = on\n\
     max_wal_senders = 10\n\
     max_replication_slots = 10\n\
     wal_keep_size = '256MB'\n\
     hot_standby = on\n\
     hot_standby_feedback = on\n\
     synchronous_commit = on\n\
     shared_buffers = '32MB'\n\
     max_connections = 50\n\
     log_line_prefix = '%m [%p] '\n\
     include_if_exists = '../region.conf'\n"
        .to_string()
}

/// The settings that make a member this region's: its address, its socket dir (regions share
/// the filesystem), its name as a standby, and — on the synchronous primary — the standby
/// whose confirmation a commit waits for.
pub fn region_conf(lab: &LabDir, region: &str, address: Ipv4Addr, replication: Replication) -> String {
    let is_primary = REGIONS.iter().any(|r| r.name == region && r.role == Role::Primary);
    let sync_names = match (replication, is_primary) {
        (Replication::Synchronous, true) => {
            REGIONS.iter().filter(|r| r.role == Role::Standby).map(|r| r.name).collect::<Vec<_>>().join(",")
        }
        _ => String::new(),
    };
    let tls = lab.pg_tls_dir(region);
    format!(
        "# region settings for {region}, written by drover lab\n\
         listen_addresses = '{address}'\n\
         port = {PG_PORT}\n\
         unix_socket_directories = '{}'\n\
         cluster_name = '{region}'\n\
         synchronous_standby_names = '{sync_names}'\n\
         ssl = on\n\
         ssl_cert_file = '{}'\n\
         ssl_key_file = '{}'\n",
        lab.pg_socket_dir(region).display(),
        tls.join(SERVER_CERT).display(),
        tls.join(SERVER_KEY).display(),
    )
}

const SERVER_CERT: &str = "server.pem";
const SERVER_KEY: &str = "server.key";

/// Client authentication lines appended to `pg_hba.conf`: password (scram) from the lab
/// subnet, over TLS only — a plain connection finds no line and is refused.
pub fn hba_lines() -> String {
    format!(
        "\n# drover lab: TLS only\nhostssl all all {SUBNET} scram-sha-256\nhostssl replication all {SUBNET} scram-sha-256\n"
    )
}

/// Gives a region's PostgreSQL its server certificate (issued by the lab CA for its
/// address, `issued`): copied where the postgres OS user can read them, the key 0600
/// as PostgreSQL demands.
pub fn install_server_cert(lab: &LabDir, region: &str, issued: &crate::pki::Issued) -> Result<(), LabError> {
    let dir = lab.pg_tls_dir(region);
    sys::create_dir(&dir, 0o700)?;
    sys::chown_postgres(&dir)?;
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| LabError::failed(format!("{}: {e}", p.display())));
    let (cert, key) = (dir.join(SERVER_CERT), dir.join(SERVER_KEY));
    sys::write_private(&cert, &read(&issued.cert)?)?;
    sys::write_private(&key, &read(&issued.key)?)?;
    sys::chown_postgres(&cert)?;
    sys::chown_postgres(&key)
}

/// The region's directory (postgres-owned), its socket dir and its region settings.
pub fn prepare_region(lab: &LabDir, region: &str, address: Ipv4Addr, replication: Replication) -> Result<(), LabError> {
    let dir = lab.region_dir(region);
    sys::create_dir(&dir, 0o700)?;
    sys::chown_postgres(&dir)?;
    sys::create_dir(&lab.pg_socket_dir(region), 0o700)?;
    sys::chown_postgres(&lab.pg_socket_dir(region))?;
    let conf = lab.region_conf(region);
    sys::write_private(&conf, &region_conf(lab, region, address, replication))?;
    sys::chown_postgres(&conf)
}

/// initdb for the primary, with checksums (pg_rewind needs them or wal_log_hints) and the
/// `drover` superuser.
pub fn initdb(lab: &LabDir, region: &str, password: &str) -> Result<(), LabError> {
    let pwfile = lab.region_dir(region).join("initdb.pw");
    sys::write_private(&pwfile, password)?;
    sys::chown_postgres(&pwfile)?;
    let pgdata = lab.pgdata(region);
    let result = sys::run(
        "runuser",
        &[
            "-u",
            "postgres",
            "--",
            &format!("{PG_BIN_DIR}/initdb"),
            "-D",
            &pgdata.to_string_lossy(),
            "--data-checksums",
            "-U",
            PG_SUPERUSER,
            &format!("--pwfile={}", pwfile.display()),
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-locale",
            "--encoding=UTF8",
            "--no-instructions",
        ],
    );
    let _ = std::fs::remove_file(&pwfile);
    result?;
    append(&pgdata.join("postgresql.conf"), &common_conf())?;
    append(&pgdata.join("pg_hba.conf"), &hba_lines())
}

fn append(path: &std::path::Path, text: &str) -> Result<(), LabError> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| LabError::failed(format!("{}: {e}", path.display())))
}

/// Copies the primary into `region` as a streaming standby (`-R` writes standby.signal and
/// primary_conninfo with application_name = the region, the name synchronous_standby_names uses).
/// The standby verifies the primary as drover does (`sslmode=verify-full` against the lab
/// CA); `-R` keeps both in primary_conninfo.
pub fn basebackup(lab: &LabDir, region: &str, primary: Ipv4Addr, password: &str) -> Result<(), LabError> {
    // The password goes in a passfile only the postgres OS user can read, named by the
    // connection string: a command line is readable by every user of the machine. It stays:
    // `-R` writes the passfile's name into primary_conninfo, not the password it held.
    let passfile = lab.primary_passfile(region);
    sys::write_private(&passfile, &pgpass_line(primary, password))?;
    sys::chown_postgres(&passfile)?;
    let args = basebackup_args(lab, region, primary, &passfile);
    sys::run("ip", &args.iter().map(String::as_str).collect::<Vec<_>>())
        .map(|_| ())
        .map_err(|e| LabError::failed(e.to_string().replace(password, "<redacted>")))
}

/// One line of a libpq password file: the primary's superuser, any database.
fn pgpass_line(primary: Ipv4Addr, password: &str) -> String {
    let escaped = password.replace('\\', "\\\\").replace(':', "\\:");
    format!("{primary}:{PG_PORT}:*:{PG_SUPERUSER}:{escaped}\n")
}

/// pg_basebackup's command line, in the standby's namespace as the postgres OS user.
fn basebackup_args(lab: &LabDir, region: &str, primary: Ipv4Addr, passfile: &Path) -> Vec<String> {
    let conninfo = format!(
        "host={primary} port={PG_PORT} user={PG_SUPERUSER} passfile='{}' application_name={region} \
         sslmode=verify-full sslrootcert='{}'",
        passfile.display(),
        lab.shared_ca_cert().display()
    );
    let pgdata = lab.pgdata(region).to_string_lossy().into_owned();
    let args = ["netns", "exec", &crate::layout::namespace(region), "runuser", "-u", "postgres", "--"];
    let pg_basebackup = format!("{PG_BIN_DIR}/pg_basebackup");
    args.into_iter()
        .chain([pg_basebackup.as_str(), "-D", &pgdata, "-d", &conninfo, "-R", "-X", "stream", "-c", "fast"])
        .map(str::to_string)
        .collect()
}

/// Connects as drover does (the DSN's sslmode and sslrootcert honoured).
pub async fn connect(dsn: &str, timeout: Duration) -> Result<tokio_postgres::Client, String> {
    let mut connector = PgConnector::parse(dsn).map_err(|e| format!("bad DSN: {e}"))?;
    connector.config_mut().connect_timeout(timeout);
    tokio::time::timeout(timeout, connector.connect())
        .await
        .map_err(|_| format!("no answer within {} ms", timeout.as_millis()))?
        .map_err(|e| connector.describe_tls(&e).unwrap_or_else(|| describe(&e)))
}

/// A tokio-postgres error with the server's message when there is one.
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            text
        }
    }
}

/// Connects again and again until the database answers, or `guard` passes.
pub async fn wait_connect(dsn: &str, guard: Duration) -> Result<tokio_postgres::Client, String> {
    let started = Instant::now();
    loop {
        match connect(dsn, Duration::from_secs(2)).await {
            Ok(c) => return Ok(c),
            Err(e) if started.elapsed() > guard => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The lab app's tables (`lab_writes` for the lab drill's probe, `lab_canary_writes` for
/// the canary protocol), created before the base backup so the standby has it too. Each
/// row keeps the region whose database took it and the drover epoch that database held
/// then, so a test can prove that no two databases accepted writes in the same epoch.
pub async fn create_app_table(client: &tokio_postgres::Client) -> Result<(), String> {
    // No standby exists yet to confirm a synchronous commit.
    client
        .batch_execute(
            "SET synchronous_commit = local;
             CREATE OR REPLACE FUNCTION lab_epoch() RETURNS bigint LANGUAGE plpgsql STABLE AS $$
             BEGIN
                 RETURN coalesce((SELECT max(epoch) FROM drover.epoch), 0);
             EXCEPTION WHEN undefined_table OR invalid_schema_name THEN
                 RETURN 0;
             END $$;
             CREATE TABLE IF NOT EXISTS lab_writes (
                 seq bigint PRIMARY KEY,
                 region text NOT NULL,
                 at timestamptz NOT NULL DEFAULT now(),
                 epoch bigint NOT NULL DEFAULT lab_epoch()
             );
             CREATE TABLE IF NOT EXISTS lab_canary_writes (
                 drill text NOT NULL,
                 seq bigint NOT NULL,
                 region text NOT NULL,
                 at timestamptz NOT NULL DEFAULT now(),
                 PRIMARY KEY (drill, seq)
             );",
        )
        .await
        .map_err(|e| describe(&e))
}

/// The standby's replication state as the primary sees it: (state, sync_state).
pub async fn replication_of(
    client: &tokio_postgres::Client,
    standby: &str,
) -> Result<Option<(String, String)>, String> {
    let rows = client
        .query("SELECT state, sync_state FROM pg_stat_replication WHERE application_name = $1", &[&standby])
        .await
        .map_err(|e| describe(&e))?;
    Ok(rows.first().map(|r| (r.get(0), r.get(1))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synchronous_primary_waits_for_west() {
        let lab = LabDir::new("/tmp/lab");
        let east = region_conf(&lab, "east", Ipv4Addr::new(10, 200, 0, 11), Replication::Synchronous);
        assert!(east.contains("listen_addresses = '10.200.0.11'"));
        assert!(east.contains("synchronous_standby_names = 'west'"));
        assert!(east.contains("unix_socket_directories = '/tmp/lab/east/run'"));
        let west = region_conf(&lab, "west", Ipv4Addr::new(10, 200, 0, 12), Replication::Synchronous);
        assert!(west.contains("synchronous_standby_names = ''"));
        assert!(west.contains("cluster_name = 'west'"));
        let east_async = region_conf(&lab, "east", Ipv4Addr::new(10, 200, 0, 11), Replication::Asynchronous);
        assert!(east_async.contains("synchronous_standby_names = ''"));
    }

    #[test]
    fn shared_settings_allow_rewind_and_include_the_region_last() {
        let conf = common_conf();
        assert!(conf.contains("wal_log_hints = on"));
        assert!(conf.trim_end().ends_with("include_if_exists = '../region.conf'"));
        assert!(hba_lines().contains("hostssl replication all 10.200.0.0/24 scram-sha-256"));
        assert!(!hba_lines().contains("\nhost "), "nothing in clear over the network");
    }

    #[test]
    fn a_region_serves_tls_with_its_own_certificate_and_its_dsn_verifies_it() {
        let lab = LabDir::new("/tmp/lab");
        let east = region_conf(&lab, "east", Ipv4Addr::new(10, 200, 0, 11), Replication::Synchronous);
        assert!(east.contains("ssl = on\n"));
        assert!(east.contains("ssl_cert_file = '/tmp/lab/east/tls/server.pem'"));
        assert!(east.contains("ssl_key_file = '/tmp/lab/east/tls/server.key'"));
        let dsn = dsn(Ipv4Addr::new(10, 200, 0, 11), "pw", Path::new("/tmp/my lab/ca.pem"));
        assert_eq!(
            dsn,
            "postgresql://drover:pw@10.200.0.11:5432/postgres?sslmode=verify-full&sslrootcert=/tmp/my%20lab/ca.pem"
        );
    }

    #[test]
    fn pg_basebackup_gets_its_password_from_a_file_never_its_command_line() {
        let lab = LabDir::new("/tmp/lab");
        let passfile = lab.primary_passfile("west");
        assert_eq!(passfile, Path::new("/tmp/lab/west/primary.pgpass"));
        let args = basebackup_args(&lab, "west", Ipv4Addr::new(10, 200, 0, 11), &passfile);
        let conninfo = &args[args.iter().position(|a| a == "-d").unwrap() + 1];
        assert!(conninfo.contains("passfile='/tmp/lab/west/primary.pgpass'"), "{conninfo}");
        assert!(!conninfo.contains("password="), "{conninfo}");
        assert!(args.iter().all(|a| !a.contains("s3cr:et")), "{args:?}");
        let line = pgpass_line(Ipv4Addr::new(10, 200, 0, 11), "s3cr:et\\x");
        assert_eq!(line, "10.200.0.11:5432:*:drover:s3cr\\:et\\\\x\n");
    }
}
