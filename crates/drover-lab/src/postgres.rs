//! The lab's PostgreSQL pair: a primary in east made by initdb, a streaming standby in west
//! made by pg_basebackup, both run as the postgres OS user inside their region.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use tokio_postgres::NoTls;

use crate::LabError;
use crate::layout::{LabDir, PG_BIN_DIR, PG_PORT, PG_SUPERUSER, REGIONS, Role, SUBNET};
use crate::state::Replication;
use crate::sys;

/// The libpq URL of a region's database (it holds the password: stored mode 0600).
pub fn dsn(address: Ipv4Addr, password: &str) -> String {
    format!("postgresql://{PG_SUPERUSER}:{password}@{address}:{PG_PORT}/postgres")
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
    format!(
        "# region settings for {region}, written by drover lab\n\
         listen_addresses = '{address}'\n\
         port = {PG_PORT}\n\
         unix_socket_directories = '{}'\n\
         cluster_name = '{region}'\n\
         synchronous_standby_names = '{sync_names}'\n",
        lab.pg_socket_dir(region).display()
    )
}

/// Client authentication lines appended to `pg_hba.conf`: password (scram) from the lab subnet.
pub fn hba_lines() -> String {
    format!("\n# drover lab\nhost all all {SUBNET} scram-sha-256\nhost replication all {SUBNET} scram-sha-256\n")
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
pub fn basebackup(lab: &LabDir, region: &str, primary: Ipv4Addr, password: &str) -> Result<(), LabError> {
    let ns = crate::layout::namespace(region);
    let conninfo =
        format!("host={primary} port={PG_PORT} user={PG_SUPERUSER} password={password} application_name={region}");
    sys::run(
        "ip",
        &[
            "netns",
            "exec",
            &ns,
            "runuser",
            "-u",
            "postgres",
            "--",
            &format!("{PG_BIN_DIR}/pg_basebackup"),
            "-D",
            &lab.pgdata(region).to_string_lossy(),
            "-d",
            &conninfo,
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
        ],
    )
    .map(|_| ())
    .map_err(|e| LabError::failed(e.to_string().replace(password, "<redacted>")))
}

pub async fn connect(dsn: &str, timeout: Duration) -> Result<tokio_postgres::Client, String> {
    let mut config: tokio_postgres::Config = dsn.parse().map_err(|e| format!("bad DSN: {e}"))?;
    config.connect_timeout(timeout);
    let (client, connection) = tokio::time::timeout(timeout, config.connect(NoTls))
        .await
        .map_err(|_| format!("no answer within {} ms", timeout.as_millis()))?
        .map_err(|e| describe(&e))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
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

/// The lab app's table, created before the base backup so the standby has it too. Each
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
        assert!(hba_lines().contains("host replication all 10.200.0.0/24 scram-sha-256"));
    }
}
