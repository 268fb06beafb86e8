#!/usr/bin/env bash
# Benchmark: does a long history slow drover down? An etcd journal and a redb journal
# are seeded with COUNT ended runs (completed failovers, two records each, written the
# way a journal from before the run index holds them; the first open indexes them, once,
# and that time is shown), and the same operations are timed on them and on an empty
# journal of the same kind:
#   - through drover_store (examples/journal_bench.rs): opening the journal and reading
#     the active run, the active run and the epoch (what `status` and every observation
#     read), one page of 50 runs, `begin` (a failover's start: the active-run check and
#     the Started record, in one transaction), and the autopilot's round (the last
#     completed move, for the anti-flap gate);
#   - through the drover binary: `drover runs` (one page), `drover status`, and
#     `drover failover --to west --yes` (refused after it observes the world: the plan's
#     databases are unreachable, so it stops before `begin`, which the line above times).
# Prints a Markdown table: median and range over REPS for each.
#   bench/journal-size.sh [COUNT [REPS]]     (default: 100000 5; needs Debian's etcd-server)
#   DROVER_BENCH_BIN=path/to/drover DROVER_BENCH_TOOL=path/to/journal_bench: measure those
#   builds instead of building release ones (say which in the figures).
#   DROVER_BENCH_OUT=/tmp/drover-bench-journal (its etcd's data, the journals, raw times)
# It starts its own etcd on free loopback ports and stops only that process.
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-100000}"
reps="${2:-5}"
out="${DROVER_BENCH_OUT:-/tmp/drover-bench-journal}"
if ! [[ "$count" =~ ^[0-9]+$ && "$reps" =~ ^[0-9]+$ ]] || [ "$reps" -lt 1 ]; then
  echo "journal-size: COUNT and REPS are whole numbers (REPS at least 1)" >&2
  exit 2
fi
command -v etcd >/dev/null || { echo "journal-size: needs etcd (apt-get install etcd-server)" >&2; exit 2; }

if [ -n "${DROVER_BENCH_BIN:-}" ]; then
  drover="$DROVER_BENCH_BIN"
else
  cargo build --release --quiet --bin drover
  drover="${CARGO_TARGET_DIR:-target}/release/drover"
fi
if [ -n "${DROVER_BENCH_TOOL:-}" ]; then
  tool="$DROVER_BENCH_TOOL"
else
  cargo build --release --quiet -p drover-store --example journal_bench
  tool="${CARGO_TARGET_DIR:-target}/release/examples/journal_bench"
fi

rm -rf "$out"
mkdir -p "$out"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
client_port="$(free_port)"
peer_port="$(free_port)"
etcd --name bench --data-dir "$out/etcd" --quota-backend-bytes 8589934592 \
  --listen-client-urls "http://127.0.0.1:$client_port" --advertise-client-urls "http://127.0.0.1:$client_port" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "bench=http://127.0.0.1:$peer_port" >"$out/etcd.log" 2>&1 &
etcd_pid=$!
trap 'kill "$etcd_pid" 2>/dev/null || true; wait "$etcd_pid" 2>/dev/null || true' EXIT
endpoint="127.0.0.1:$client_port"
for _ in $(seq 150); do
  "$tool" time 0 etcd "$endpoint" /probe >/dev/null 2>&1 && break
  sleep 0.2
done

# A DNS server that refuses every query at once (answers REFUSED), so that reading the
# traffic record costs a round trip, not a 5 s wait for an answer that never comes.
dns_port="$(free_port)"
python3 - "$dns_port" <<'DNS' &
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
while True:
    q, peer = s.recvfrom(4096)
    if len(q) >= 12:
        # The query's id and question back, QR set, RCODE 5 (REFUSED), no records.
        s.sendto(q[:2] + bytes([0x80 | (q[2] & 0x79), 0x05]) + q[4:6] + b"\0\0\0\0\0\0" + q[12:], peer)
DNS
dns_pid=$!
trap 'kill "$etcd_pid" "$dns_pid" 2>/dev/null || true; wait "$etcd_pid" "$dns_pid" 2>/dev/null || true' EXIT

# A plan whose databases are unreachable (connections refused) and whose DNS server
# refuses: the world costs the same whatever the journal holds.
plan_dir="$out/plan"
mkdir -p "$plan_dir"
printf 'postgres://drover:pw@127.0.0.1:1/postgres\n' >"$plan_dir/east.dsn"
printf 'postgres://drover:pw@127.0.0.1:2/postgres\n' >"$plan_dir/west.dsn"
printf 'c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0\n' >"$plan_dir/tsig.key"
chmod 600 "$plan_dir"/*.dsn "$plan_dir/tsig.key"
cat >"$plan_dir/plan.yaml" <<PLAN
name: shop
objectives: { rto: 30s, rpo: 0s }
regions:
  east: { role: primary }
  west: { role: standby }
  witness: { role: witness }
database:
  kind: postgres
  replication: synchronous
  members:
    east: { dsn_file: $plan_dir/east.dsn }
    west: { dsn_file: $plan_dir/west.dsn }
traffic:
  kind: rfc2136
  server: 127.0.0.1:$dns_port
  zone: app.test.
  record: api.app.test.
  ttl: 5s
  tsig: { name: drover, algorithm: hmac-sha256, secret_file: $plan_dir/tsig.key }
  targets: { east: 127.0.0.11, west: 127.0.0.12 }
checks:
  api: { http: "http://{target}:9/healthz", interval: 1s, timeout: 200ms }
PLAN

echo "journal-size: seeding $count ended runs into etcd and redb" >&2
t0=$(date +%s.%N)
"$tool" seed "$count" etcd "$endpoint" /bench/full
t1=$(date +%s.%N)
"$tool" seed "$count" redb "$out/redb-full"
t2=$(date +%s.%N)
mkdir -p "$out/redb-empty"
echo "journal-size: seeded etcd in $(echo "$t1 - $t0" | bc) s, redb in $(echo "$t2 - $t1" | bc) s" >&2

raw="$out/times.tsv" # store, journal, operation, ms...
: >"$raw"
for journal in empty full; do
  "$tool" time "$reps" etcd "$endpoint" "/bench/$journal" | sed "s/^/etcd\t$journal\t/" >>"$raw"
  "$tool" time "$reps" redb "$out/redb-$journal" | sed "s/^/redb\t$journal\t/" >>"$raw"
done

# One drover command, REPS times: its wall time in ms each. Exit codes 0, 1 (status: nothing
# of the world could be read) and 2 (failover: refused, the target is unreachable) are the
# expected answers in this world.
time_cli() {
  local store="$1" journal="$2" name="$3"
  shift 3
  local where
  if [ "$store" = etcd ]; then where=(--store "etcd://$endpoint/bench/$journal"); else where=(--state "$out/redb-$journal"); fi
  local line="$store\t$journal\t$name"
  for _ in $(seq "$reps"); do
    local s e code=0
    s=$(date +%s%N)
    "$drover" "$@" --plan "$plan_dir/plan.yaml" "${where[@]}" >"$out/last.out" 2>&1 || code=$?
    e=$(date +%s%N)
    if [ "$code" -gt 2 ] || grep -q "journal" "$out/last.out"; then
      echo "journal-size: drover $* exited $code:" >&2
      cat "$out/last.out" >&2
      exit 1
    fi
    line="$line\t$(echo "scale=2; ($e - $s) / 1000000" | bc)"
  done
  printf '%b\n' "$line" >>"$raw"
}
for store in etcd redb; do
  for journal in empty full; do
    time_cli "$store" "$journal" "drover runs" runs
    time_cli "$store" "$journal" "drover status" status
    time_cli "$store" "$journal" "drover failover (refused)" failover --to west --yes
  done
done

# median and range of the fields after the third
stats() { tr '\t' '\n' | sort -g | awk '{v[NR]=$1} END {m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%.1f (%.1f–%.1f)", m, v[1], v[NR]}'; }
echo "| store | operation | empty journal: median (range) ms | $count ended runs: median (range) ms |"
echo "|---|---|---|---|"
for store in etcd redb; do
  cut -f3 "$raw" | awk '!seen[$0]++' | while read -r op; do
    empty=$(awk -F'\t' -v s="$store" -v o="$op" '$1==s && $2=="empty" && $3==o' "$raw" | cut -f4- | stats)
    full=$(awk -F'\t' -v s="$store" -v o="$op" '$1==s && $2=="full" && $3==o' "$raw" | cut -f4- | stats)
    echo "| $store | $op | $empty | $full |"
  done
done
