//! Serves two in-memory API-server stand-ins over HTTP, east seeded with COUNT small
//! ConfigMaps and Secrets in namespace `bench` and west empty, so the `drover` binary can
//! back up and restore through its real kube-rs client. Writes DIR/east.kubeconfig and
//! DIR/west.kubeconfig, then DIR/ready, and serves until killed. Run by bench/k8s-backup.sh;
//! `standin_server COUNT DIR`.

use std::sync::Arc;

use drover_backup::standin::http::ApiServer;
use drover_backup::standin::{MemoryCluster, bench_object};
use serde_json::json;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().map(|n| n.parse().expect("COUNT is a number")).unwrap_or(30_000);
    let dir = std::path::PathBuf::from(args.next().expect("DIR"));
    let east = Arc::new(MemoryCluster::new());
    east.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}}));
    for i in 0..count {
        east.seed(bench_object(i));
    }
    let servers = [ApiServer::start(east).await, ApiServer::start(Arc::new(MemoryCluster::new())).await];
    servers[0].write_kubeconfig(&dir, "east");
    servers[1].write_kubeconfig(&dir, "west");
    std::fs::write(dir.join("ready"), "").unwrap();
    std::future::pending::<()>().await;
}
