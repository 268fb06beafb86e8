//! The `database` section: the PostgreSQL pair that moves with the service
//! (`rds` and `aurora-global` are read by `aws_database`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::aws_database::{read_aurora, read_rds};
use super::kinds::DatabaseKind;
use super::model::{DatabaseSpec, MemberHost, PostgresMember, PostgresSpec, Replication};
use super::raw::Node;
use super::reader::{Entry, Mapping, Reader, declared_kind};
use super::regions::{Regions, region_entries};

const FIELDS: [&str; 5] = ["kind", "replication", "promote_timeout", "connect_timeout", "members"];
const MEMBER_FIELDS: [&str; 3] = ["dsn_env", "dsn_file", "host"];
const HOST_PREFIX: &str = "the command prefix that runs a command on the host, e.g. [ssh, db-east]";
const HOST_FIELDS: [&str; 3] = ["exec", "data_dir", "bin_dir"];
const DEFAULT_PROMOTE_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

pub(super) fn read(
    r: &mut Reader<'_>,
    top: &Mapping<'_>,
    node: &Node,
    regions: Option<&Regions>,
) -> Option<DatabaseSpec> {
    match declared_kind(node).and_then(DatabaseKind::from_name) {
        Some(DatabaseKind::Rds) => return read_rds(r, top, node, regions),
        Some(DatabaseKind::AuroraGlobal) => return read_aurora(r, top, node, regions),
        Some(DatabaseKind::Postgres) | None => {}
    }
    let at = top.key("database").map_or(node.pos(), Node::pos);
    let m = r.mapping(node, "database", at, &FIELDS, &[], "a mapping with kind, replication and members")?;
    // `rds` and `aurora-global` are read by their own module; here they complete the list in messages.
    let kinds = DatabaseKind::ALL.map(|k| (k.as_str(), k));
    let kind =
        r.require(&m, "kind", "add kind: postgres").and_then(|n| r.choice(n, "database.kind", "database kind", &kinds));
    let replication = r
        .require(
            &m,
            "replication",
            "add replication: synchronous (no acknowledged write is lost) or replication: asynchronous",
        )
        .and_then(|n| {
            r.choice(
                n,
                "database.replication",
                "replication",
                &[("synchronous", Replication::Synchronous), ("asynchronous", Replication::Asynchronous)],
            )
        });
    let promote_timeout = match m.get("promote_timeout") {
        Some(n) => r.positive_duration(n, "database.promote_timeout"),
        None => Some(DEFAULT_PROMOTE_TIMEOUT),
    };
    let connect_timeout = match m.get("connect_timeout") {
        Some(n) => r.positive_duration(n, "database.connect_timeout"),
        None => Some(DEFAULT_CONNECT_TIMEOUT),
    };
    let members = r
        .require(
            &m,
            "members",
            "add one member per primary and standby region, e.g. members: { east: { dsn_env: EAST_DSN } }",
        )
        .and_then(|n| read_members(r, &m, n, regions));
    kind?;
    Some(DatabaseSpec::Postgres(PostgresSpec {
        replication: replication?,
        members: members?,
        promote_timeout: promote_timeout?,
        connect_timeout: connect_timeout?,
    }))
}

fn read_members(
    r: &mut Reader<'_>,
    m: &Mapping<'_>,
    node: &Node,
    regions: Option<&Regions>,
) -> Option<BTreeMap<String, PostgresMember>> {
    let at = m.key("members").map_or(node.pos(), Node::pos);
    let example = |region: &str| format!("{region}: {{ dsn_env: {}_DSN }}", region.to_uppercase().replace('-', "_"));
    let entries = region_entries(r, node, "database.members", at, regions, "database member", &example)?;
    r.each(&entries, read_member)
}

fn read_member(r: &mut Reader<'_>, entry: &Entry<'_>) -> Option<PostgresMember> {
    let m = r.mapping(
        entry.value,
        &entry.path,
        entry.key.pos(),
        &MEMBER_FIELDS,
        &["dsn"],
        "a mapping like { dsn_env: EAST_DSN }",
    )?;
    let dsn = r.secret_ref(&m, "dsn", "dsn_env", "dsn_file");
    let host = match m.get("host") {
        Some(n) => read_host(r, &m, n).map(Some),
        None => Some(None),
    };
    Some(PostgresMember { dsn: dsn?, host: host? })
}

fn read_host(r: &mut Reader<'_>, member: &Mapping<'_>, node: &Node) -> Option<MemberHost> {
    let path = member.field("host");
    let at = member.key("host").map_or(node.pos(), Node::pos);
    let m = r.mapping(node, &path, at, &HOST_FIELDS, &[], "a mapping with exec and data_dir")?;
    let exec = r
        .require(
            &m,
            "exec",
            "add the command prefix that runs a command on the member's host, e.g. exec: [ssh, db-east]",
        )
        .and_then(|n| super::reader::argv(r, n, &m.field("exec"), HOST_PREFIX));
    let data_dir = r
        .require(&m, "data_dir", "add the member's data directory, e.g. data_dir: /var/lib/postgresql/15/main")
        .and_then(|n| absolute_path(r, n, &m.field("data_dir")));
    let bin_dir = match m.get("bin_dir") {
        Some(n) => absolute_path(r, n, &m.field("bin_dir")),
        None => Some(PathBuf::from(DEFAULT_BIN_DIR)),
    };
    Some(MemberHost { exec: exec?, data_dir: data_dir?, bin_dir: bin_dir? })
}

fn absolute_path(r: &mut Reader<'_>, node: &Node, field: &str) -> Option<PathBuf> {
    let text = r.text(node, field, "an absolute path")?;
    if !text.starts_with('/') {
        r.error(
            node.pos(),
            field,
            format!(
                "'{text}' is not an absolute path; paths on the host start with /, e.g. /var/lib/postgresql/15/main"
            ),
        );
        return None;
    }
    Some(PathBuf::from(text))
}
