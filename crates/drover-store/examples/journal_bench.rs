//! For bench/journal-size.sh: seeds a journal with ended runs, and times what drover asks
//! of a journal on each path, against an etcd prefix or a redb state directory.
//!
//!   journal_bench seed (etcd HOST:PORT PREFIX | redb DIR) COUNT
//!   journal_bench time (etcd HOST:PORT PREFIX | redb DIR) REPS
//!
//! `seed` writes completed failovers (a `Started` and a `Completed` record each, copied
//! from one header) the way a journal from before the run index holds them — raw etcd
//! transactions or one redb write — so 100,000 runs take seconds; the first journal
//! opened over them indexes them, once (`time` reports how long that took as
//! `first-open`). `time` prints one line per operation: its name and each rep's time in
//! milliseconds, tab-separated.

use std::path::Path;
use std::time::Instant;

use drover_core::history::{self, PageRequest};
use drover_core::journal::Journal;
use drover_core::run::{Entry, Record, RunHeader, RunId, RunKind, RunState, RunSummary};
use drover_store::{EtcdAccess, EtcdJournal, RedbJournal};

const T0: u64 = 1_700_000_000_000;

fn header(i: u64) -> RunHeader {
    RunHeader {
        id: RunId(format!("r{}-{:04x}", T0 + i * 1000, i % 0x10000)),
        kind: RunKind::Failover,
        plan: "shop".into(),
        from: "east".into(),
        to: "west".into(),
        epoch: 1,
        steps: drover_core::plan::StepKind::ALL[..4].to_vec(),
        reason: "seeded by bench/journal-size.sh: a failover that completed".into(),
        accepted_loss: None,
        requested_by: None,
    }
}

/// The two records of seeded run `i`: sequences 2i+1 and 2i+2.
fn records(i: u64) -> [Entry; 2] {
    let at_ms = T0 + i * 1000;
    [
        Entry { seq: 2 * i + 1, at_ms, record: Record::Started { header: header(i) } },
        Entry { seq: 2 * i + 2, at_ms: at_ms + 500, record: Record::Completed },
    ]
}

async fn seed_etcd(endpoint: &str, prefix: &str, count: u64) {
    use etcd_client::{Client, Txn, TxnOp};
    let mut client = Client::connect([endpoint], None).await.expect("connect to etcd");
    let mut ops = Vec::new();
    for i in 0..count {
        let id = header(i).id;
        for entry in records(i) {
            let key = format!("{prefix}/runs/{}/{:020}", id.0, entry.seq);
            ops.push(TxnOp::put(key, serde_json::to_string(&entry).unwrap(), None));
        }
        if ops.len() >= 100 || i + 1 == count {
            client.txn(Txn::new().and_then(std::mem::take(&mut ops))).await.expect("seed etcd");
        }
    }
    client.put(format!("{prefix}/seq"), (2 * count).to_string(), None).await.expect("seed etcd");
}

fn seed_redb(dir: &Path, count: u64) {
    use redb::TableDefinition;
    let entries: TableDefinition<(&str, u64), &str> = TableDefinition::new("entries");
    let meta: TableDefinition<&str, u64> = TableDefinition::new("meta");
    std::fs::create_dir_all(dir).unwrap();
    let db = redb::Database::create(dir.join("journal.redb")).expect("create the journal file");
    let tx = db.begin_write().unwrap();
    {
        let mut table = tx.open_table(entries).unwrap();
        for i in 0..count {
            let id = header(i).id;
            for entry in records(i) {
                table.insert((id.0.as_str(), entry.seq), serde_json::to_string(&entry).unwrap().as_str()).unwrap();
            }
        }
        tx.open_table(meta).unwrap().insert("seq", 2 * count).unwrap();
    }
    tx.commit().unwrap();
}

async fn open(target: &[String]) -> Box<dyn Journal> {
    match target {
        [kind, endpoint, prefix] if kind == "etcd" => {
            Box::new(EtcdJournal::connect(&EtcdAccess::plain([endpoint.as_str()]), prefix).await.expect("connect"))
        }
        [kind, dir] if kind == "redb" => Box::new(RedbJournal::open(Path::new(dir)).expect("open")),
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!("usage: journal_bench (seed COUNT | time REPS) (etcd HOST:PORT PREFIX | redb DIR)");
    std::process::exit(2)
}

fn ms(since: Instant) -> String {
    format!("{:.2}", since.elapsed().as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(verb), Some(n)) = (args.first(), args.get(1).and_then(|n| n.parse::<u64>().ok())) else { usage() };
    let target = &args[2..];
    match verb.as_str() {
        "seed" => match target {
            [kind, endpoint, prefix] if kind == "etcd" => seed_etcd(endpoint, prefix, n).await,
            [kind, dir] if kind == "redb" => seed_redb(Path::new(dir), n),
            _ => usage(),
        },
        "time" => time(target, n).await,
        _ => usage(),
    }
}

async fn time(target: &[String], reps: u64) {
    let t = Instant::now();
    let journal = open(target).await;
    // The first call indexes a journal from before the run index (redb: when opened).
    journal.active().await.expect("active");
    println!("first-open\t{}", ms(t));
    // Closed before the reps: one open journal at a time, as in drover.
    drop(journal);
    let mut lines: Vec<(&str, Vec<String>)> =
        ["open", "active", "page", "begin", "autopilot-round"].iter().map(|n| (*n, Vec::new())).collect();
    for rep in 0..reps {
        let t = Instant::now();
        let journal = open(target).await;
        journal.active().await.expect("active");
        lines[0].1.push(ms(t));
        let t = Instant::now();
        journal.active().await.expect("active");
        journal.epoch().await.expect("epoch");
        lines[1].1.push(ms(t));
        let t = Instant::now();
        journal.page(&PageRequest::first(history::DEFAULT_PAGE)).await.expect("page");
        lines[2].1.push(ms(t));
        // A failover's start: the active-run check and the Started record (then ended,
        // so the next rep can start again).
        let mut h = header(0);
        h.id = RunId(format!("r-bench-{rep}-{}", std::process::id()));
        let t = Instant::now();
        journal.begin(&h).await.expect("begin");
        lines[3].1.push(ms(t));
        journal.append(&h.id, Record::Aborted { reason: "bench".into(), by: None }).await.expect("abort");
        // The autopilot's round reads the last completed move (the anti-flap gate).
        let t = Instant::now();
        let moved = |r: &RunSummary| r.state == RunState::Completed && r.header.kind.moves_primary();
        history::newest_where(journal.as_ref(), moved).await.expect("last move");
        lines[4].1.push(ms(t));
    }
    for (name, times) in lines {
        println!("{name}\t{}", times.join("\t"));
    }
}
