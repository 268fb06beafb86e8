#!/usr/bin/env bash
# Backs up and restores COUNT small objects (half ConfigMaps, half Secrets, Secrets
# encrypted) RUNS times, two ways, and prints objects per second for each run:
#   library: drover-backup against the in-memory API-server stand-in directly;
#   binary:  `drover backup create` / `drover restore` through kube-rs over HTTP to the
#            stand-in's HTTP front (two regions, a local-directory store each).
# `bench/k8s-backup.sh [RUNS] [COUNT]` (default 5 runs of 30,000). Figures: docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"
count="${2:-30000}"
target="${CARGO_TARGET_DIR:-target}"
# The binary path needs no AWS SDK: build drover with only the kubernetes feature.
cargo build --release -q -p drover-backup --features testing --example backup_bench --example standin_server
cargo build --release -q -p drover --no-default-features --features kubernetes --bin drover
drover="$target/release/drover"
# The plan's database and DNS are never reached by backups; their references must resolve.
export BENCH_DSN="postgres://bench@127.0.0.1:1/bench" BENCH_TSIG="c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI="

echo "== library: $count objects, $runs runs"
for run in $(seq "$runs"); do
  echo "-- run $run"
  # Each run writes ~30,000 small files: let the previous run's writes and deletions reach the
  # disk first, or the runs slow each other down.
  sync
  "$target/release/examples/backup_bench" "$count"
done

echo "== binary over HTTP: $count objects, $runs runs"
for run in $(seq "$runs"); do
  work="$(mktemp -d)"
  "$target/release/examples/standin_server" "$count" "$work" &
  server=$!
  trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
  while [ ! -e "$work/ready" ]; do sleep 0.2; done
  head -c 32 /dev/urandom | base64 >"$work/backup.key"
  chmod 600 "$work/backup.key" # drover refuses secret files others can read
  cat >"$work/plan.yaml" <<EOF
name: bench
objectives: { rto: 5m, rpo: 0s }
regions: { east: { role: primary }, west: { role: standby } }
database:
  kind: postgres
  replication: asynchronous
  members: { east: { dsn_env: BENCH_DSN }, west: { dsn_env: BENCH_DSN } }
traffic:
  kind: rfc2136
  server: 127.0.0.1:9
  zone: app.test.
  record: api.app.test.
  ttl: 5s
  tsig: { name: k, algorithm: hmac-sha256, secret_env: BENCH_TSIG }
  targets: { east: 192.0.2.1, west: 192.0.2.2 }
checks: { api: { tcp: "{target}:9" } }
backup:
  secrets: true
  key_file: $work/backup.key
  clusters:
    east: { kubeconfig: $work/east.kubeconfig, context: east }
    west: { kubeconfig: $work/west.kubeconfig, context: west }
  stores: { east: { dir: $work/store-east }, west: { dir: $work/store-west } }
EOF
  timed() { # LABEL COMMAND...: runs it, prints objects/s from its JSON's object count
    local label="$1"; shift
    local start end
    start=$(date +%s.%N)
    "$@" >"$work/out.json" 2>/dev/null
    end=$(date +%s.%N)
    python3 - "$label" "$start" "$end" "$work/out.json" <<'PY'
import json, sys
label, start, end, path = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
out = json.load(open(path))
n = out.get("objects") if isinstance(out.get("objects"), int) else len(out["objects"])
print(f"{label:<18} {n:>6} objects in {end - start:6.2f}s: {n / (end - start):8.0f} objects/s")
PY
  }
  echo "-- run $run"
  sync
  timed "backup" "$drover" backup create --plan "$work/plan.yaml" --region east -o json
  id="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$work/out.json")"
  sleep 0.01
  timed "backup, unchanged" "$drover" backup create --plan "$work/plan.yaml" --region east -o json
  timed "restore" "$drover" restore --plan "$work/plan.yaml" --from "$id" --to-region west -o json
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -rf "$work"
  trap - EXIT
done
