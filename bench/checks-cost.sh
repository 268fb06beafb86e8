#!/usr/bin/env bash
# Benchmark: what health checks cost. N HTTP endpoints on a local server
# (bench_target), each checked once a second, first by `drover serve` (a plan
# with N/2 http checks, 1 s interval, 900 ms timeout, run against two service
# regions at 127.0.0.1 and 127.0.0.2), then by Prometheus blackbox_exporter
# (module http_2xx, 900 ms timeout) scraped for the same N targets every second
# by bench_blackbox_driver, as a Prometheus server would. For each, after a
# warm-up, over a fixed window: CPU seconds of the checker's process per 1,000
# checks (utime+stime from /proc), its largest resident set (VmRSS, sampled each
# second), and the checks per second the target actually served (the median
# second), so both sides are shown to have done the same work. Prints a
# Markdown table.
#   bench/checks-cost.sh [N ...]      (default: 1000 10000; needs 2 CPUs, root or sudo for apt)
#   DROVER_BENCH_WINDOW=60 DROVER_BENCH_WARMUP=10 DROVER_BENCH_OUT=/tmp/drover-bench-checks
# The target (and the driver) run on CPU 0, the checker being measured on CPU 1,
# so neither side's load steals the other's CPU. The driver's own CPU is not
# counted, as Prometheus's scraping would not be.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000 10000)
window="${DROVER_BENCH_WINDOW:-60}"
warmup="${DROVER_BENCH_WARMUP:-10}"
out="${DROVER_BENCH_OUT:-/tmp/drover-bench-checks}"
# Ports off the usual ones, so a system blackbox_exporter (9115) or drover (7070) is left alone.
target_port="${DROVER_BENCH_TARGET_PORT:-18080}"
api_port="${DROVER_BENCH_API_PORT:-17070}"
exporter_port="${DROVER_BENCH_EXPORTER_PORT:-19115}"
# Scrapes the driver keeps in flight at most; Prometheus keeps one per target, so the bound
# only matters when the exporter falls behind, and then the driver stops piling on.
concurrency="${DROVER_BENCH_DRIVER_CONCURRENCY:-4096}"

if [ "$(nproc)" -lt 2 ]; then
  echo "checks-cost: needs 2 CPUs (the target on one, the checker on the other)" >&2
  exit 2
fi
for n in "${sizes[@]}"; do
  if ! [[ "$n" =~ ^[0-9]+$ ]] || [ "$n" -lt 2 ] || [ $((n % 2)) -ne 0 ]; then
    echo "checks-cost: endpoint counts are even whole numbers (N/2 checks x 2 regions), got '$n'" >&2
    exit 2
  fi
done

# blackbox_exporter from Debian, installed only when missing (as scripts/setup.sh does).
if ! dpkg-query -W -f='${Status}' prometheus-blackbox-exporter 2>/dev/null | grep -q "install ok installed"; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "checks-cost: run as root (or install sudo)" >&2; exit 2; }
    sudo="sudo"
  fi
  echo "checks-cost: installing prometheus-blackbox-exporter"
  $sudo apt-get update -qq
  # The package's own service (on 9115) is not used: this script starts its own exporter.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus-blackbox-exporter >/dev/null
fi
exporter_bin=/usr/bin/prometheus-blackbox-exporter

cargo build --release --quiet --bin drover
cargo build --release --quiet -p drover-lab --example bench_target --example bench_blackbox_driver
release="${CARGO_TARGET_DIR:-target}/release"
drover="$release/drover"
target_bin="$release/examples/bench_target"
driver_bin="$release/examples/bench_blackbox_driver"
tck="$(getconf CLK_TCK)"

rm -rf "$out"
mkdir -p "$out"
results="$out/results.tsv"
: >"$results"

# Every process this script starts, so that it stops them all whatever happens.
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
stop() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# Waits until URL answers 2xx, or fails after 60 s (a 10,000-check plan takes a moment to load).
wait_http() {
  for _ in $(seq 1 600); do
    curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "checks-cost: $1 did not answer within 60 s" >&2
  return 1
}

sleep_to_next_second() {
  local ns
  ns="$(date +%N)"
  sleep "$(printf '0.%09d' $((1000000000 - 10#$ns)))"
}

# utime+stime of every thread of PID, in clock ticks. The name in field 2 may hold
# spaces, so the fields are counted after its closing parenthesis.
cpu_ticks() {
  local stat
  stat="$(</proc/"$1"/stat)"
  stat="${stat##*) }"
  # shellcheck disable=SC2086
  set -- $stat
  echo $((${12} + ${13}))
}

rss_kib() {
  awk '/^VmRSS:/ { print $2 }' /proc/"$1"/status
}

# Busy clock ticks of CPU 0 and of CPU 1 (everything but idle and iowait), to show how
# much else ran on each while a checker was measured.
cpu_busy() {
  awk '$1 == "cpu0" || $1 == "cpu1" { printf "%d ", $2 + $3 + $4 + $7 + $8 + $9 } END { print "" }' /proc/stat
}

# measure PID [HELPER_PID ...] -> "FIRST_SECOND SECONDS CPU_TICKS MAX_RSS_KIB HELPER_TICKS CPU0_BUSY CPU1_BUSY":
# the window starts on a whole second so that it lines up with the target's per-second lines.
measure() {
  local pid="$1" first c0 c1 h0=0 h1=0 b0 b1 rss max=0 helper
  shift
  sleep_to_next_second
  first="$(date +%s)"
  c0="$(cpu_ticks "$pid")"
  for helper in "$@"; do h0=$((h0 + $(cpu_ticks "$helper"))); done
  read -ra b0 < <(cpu_busy)
  for _ in $(seq 1 "$window"); do
    sleep_to_next_second
    rss="$(rss_kib "$pid")"
    [ "$rss" -gt "$max" ] && max="$rss"
  done
  c1="$(cpu_ticks "$pid")"
  for helper in "$@"; do h1=$((h1 + $(cpu_ticks "$helper"))); done
  read -ra b1 < <(cpu_busy)
  echo "$first $window $((c1 - c0)) $max $((h1 - h0)) $((b1[0] - b0[0])) $((b1[1] - b0[1]))"
}

start_target() { # RATE_FILE
  taskset -c 0 "$target_bin" --listen "127.0.0.1:$target_port" --listen "127.0.0.2:$target_port" \
    --rate-file "$1" 2>"$1.log" &
  target_pid=$!
  pids+=("$target_pid")
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null --max-time 1 "http://127.0.0.2:$target_port/e/0" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "checks-cost: bench_target did not start, see $1.log" >&2
  return 1
}

# Secrets the plan references; nothing listens there, so the daemon sees both databases
# and the DNS server unreachable, which changes nothing about how it runs its checks.
echo "postgres://drover:pw@127.0.0.1:1/postgres" >"$out/east.dsn"
echo "postgres://drover:pw@127.0.0.1:1/postgres" >"$out/west.dsn"
echo "YmVuY2htYXJrLWtleS1ub3QtYS1zZWNyZXQ=" >"$out/tsig"
chmod 600 "$out/east.dsn" "$out/west.dsn" "$out/tsig" # drover refuses secret files others can read
cat >"$out/blackbox.yml" <<'YAML'
modules:
  http_2xx:
    prober: http
    timeout: 900ms
    http:
      # The targets are IPv4 literals; no lookup, no IPv6 attempt first.
      preferred_ip_protocol: ip4
YAML

for n in "${sizes[@]}"; do
  plan="$out/plan-$n.yaml"
  python3 - "$n" "$target_port" "$out" >"$plan" <<'PY'
import sys
n, port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
print(f"""name: bench
objectives: {{ rto: 30s, rpo: 0s }}
regions:
  east: {{ role: primary }}
  west: {{ role: standby }}
database:
  kind: postgres
  replication: synchronous
  members:
    east: {{ dsn_file: {out}/east.dsn }}
    west: {{ dsn_file: {out}/west.dsn }}
traffic:
  kind: rfc2136
  server: 127.0.0.1:9
  zone: bench.test.
  record: api.bench.test.
  ttl: 5s
  tsig: {{ name: drover, algorithm: hmac-sha256, secret_file: {out}/tsig }}
  targets: {{ east: 127.0.0.1, west: 127.0.0.2 }}
# The autopilot looks at one check only; auto_failover stays off.
policy: {{ detect_with: [e0] }}
checks:""")
for i in range(n // 2):
    print(f'  e{i}: {{ http: "http://{{target}}:{port}/e/{i}", interval: 1s, timeout: 900ms }}')
PY
  t0="$(date +%s%N)"
  "$drover" plan check "$plan" >"$out/plan-check-$n.txt"
  plan_check_ms=$((($(date +%s%N) - t0) / 1000000))
  echo "N=$n: plan has $((n / 2)) checks; drover plan check took ${plan_check_ms} ms"

  # --- drover serve ---
  start_target "$out/target-drover-$n.rate"
  t0="$(date +%s%N)"
  taskset -c 1 "$drover" serve --plan "$plan" --state "$out/state-$n" \
    --listen "127.0.0.1:$api_port" --open-reads --vantage bench >"$out/drover-$n.log" 2>&1 &
  drover_pid=$!
  pids+=("$drover_pid")
  wait_http "http://127.0.0.1:$api_port/healthz"
  startup_ms=$((($(date +%s%N) - t0) / 1000000))
  sleep "$warmup"
  measure "$drover_pid" "$target_pid" >"$out/measure"
  read -r first secs ticks rss helper busy0 busy1 <"$out/measure"
  fds="$(find /proc/"$drover_pid"/fd -mindepth 1 | wc -l)"
  # After the window, so the scrape is not counted: how many checks' last probe succeeded,
  # and how long the last probes took.
  curl -fsS --max-time 10 "http://127.0.0.1:$api_port/metrics" >"$out/drover-$n.metrics"
  up="$(awk '/^drover_check_up\{/ { if ($2 == 1) ok++; else bad++ } END { printf "%d/%d", ok, ok + bad }' \
    "$out/drover-$n.metrics")"
  latency="$(awk '/^drover_check_latency_seconds\{/ { print $2 * 1000 }' "$out/drover-$n.metrics" | sort -g \
    | awk '{ v[NR] = $1 } END { if (NR) { p99 = int(NR * 0.99); if (p99 < 1) p99 = 1
        printf "p50 %.1f ms, p99 %.1f ms, max %.1f ms", v[int((NR + 1) / 2)], v[p99], v[NR] } }')"
  stop "$drover_pid"
  stop "$target_pid"
  printf 'drover serve\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$first" "$secs" "$ticks" "$rss" \
    "$helper" "$busy0" "$busy1" "$out/target-drover-$n.rate" \
    "plan check ${plan_check_ms} ms, API up ${startup_ms} ms after start; last probe ok for $up checks; last probe latency $latency; $fds open files" \
    >>"$results"
  echo "N=$n: drover serve measured (last probe ok for $up checks)"

  # --- blackbox_exporter ---
  start_target "$out/target-blackbox-$n.rate"
  taskset -c 1 "$exporter_bin" --config.file="$out/blackbox.yml" \
    --web.listen-address="127.0.0.1:$exporter_port" >"$out/blackbox-$n.log" 2>&1 &
  exporter_pid=$!
  pids+=("$exporter_pid")
  wait_http "http://127.0.0.1:$exporter_port/-/healthy"
  taskset -c 0 "$driver_bin" --exporter "127.0.0.1:$exporter_port" --target-base "http://127.0.0.1:$target_port" \
    -n "$n" --concurrency "$concurrency" --rate-file "$out/driver-$n.rate" 2>"$out/driver-$n.log" &
  driver_pid=$!
  pids+=("$driver_pid")
  sleep "$warmup"
  measure "$exporter_pid" "$target_pid" "$driver_pid" >"$out/measure"
  read -r first secs ticks rss helper busy0 busy1 <"$out/measure"
  fds="$(find /proc/"$exporter_pid"/fd -mindepth 1 | wc -l)"
  stop "$driver_pid"
  stop "$exporter_pid"
  stop "$target_pid"
  scrapes="$(awk -v a="$first" -v b="$((first + secs))" -v c="$concurrency" '$1 >= a && $1 < b { s += $2; ok += $3; f += $4; k += $5 }
    END { printf "scrapes sent %d: probe_success 1 in %d, failed %d; %d not sent (%d in flight)", s, ok, f, k, c }' \
    "$out/driver-$n.rate")"
  printf 'blackbox_exporter\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$first" "$secs" "$ticks" "$rss" \
    "$helper" "$busy0" "$busy1" "$out/target-blackbox-$n.rate" "$scrapes; $fds open files" >>"$results"
  echo "N=$n: blackbox_exporter measured ($scrapes)"
done

python3 - "$results" "$tck" "$window" "$warmup" "$*" <<'PY'
import datetime, os, platform, resource, statistics, subprocess, sys
results, tck, window, warmup, args = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]

def cpu_model():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"

def first_line(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0].strip()
    except Exception:
        return "unknown"

rows, notes = [], []
for line in open(results):
    tool, n, first, secs, ticks, rss, helper, busy0, busy1, rate_file, note = line.rstrip("\n").split("\t")
    first, secs, n = int(first), int(secs), int(n)
    seconds = [list(map(int, l.split())) for l in open(rate_file)]
    seconds = [s for s in seconds if first <= s[0] < first + secs]
    rate = [s[1] for s in seconds]
    checks = sum(rate)
    cpu = int(ticks) / tck
    pct = lambda t: 100 * int(t) / tck / secs
    rows.append((tool, n, statistics.median(rate) if rate else 0, min(rate, default=0),
                 cpu * 1000 / checks if checks else float("nan"), pct(ticks), int(rss) / 1024,
                 statistics.median(s[2] for s in seconds) if seconds else 0,
                 statistics.median(s[3] for s in seconds) if seconds else 0))
    helpers = "target" if tool.startswith("drover") else "target + driver"
    notes.append(f"- {tool}, {n} endpoints: {note}. CPU 0 busy {pct(busy0):.0f}% ({helpers} {pct(helper):.0f}%), "
                 f"CPU 1 busy {pct(busy1):.0f}% ({tool} {pct(ticks):.0f}%)")

print()
print(f"- **Date:** {datetime.date.today()}")
mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
# drover holds one socket per probe in flight and does not raise its own limit (Go raises its own).
nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
print(f"- **Machine:** {os.cpu_count()} cores ({cpu_model()}), {mem:.0f} GiB RAM, Linux {platform.release()}, "
      f"open files limit {nofile}")
print(f"- **blackbox_exporter:** {first_line(['/usr/bin/prometheus-blackbox-exporter', '--version'])}")
command = " ".join(["bench/checks-cost.sh"] + args.split())
print(f"- **Command:** `{command}` ({window} s window after {warmup} s warm-up)")
print()
print("| tool | endpoints | checks/s at the target (median second) | slowest second | CPU s per 1,000 checks "
      "| CPU (% of one core) | max RSS MiB | new connections/s at the target | busiest 10 ms at the target |")
print("|---|---|---|---|---|---|---|---|---|")
for tool, n, med, low, per1000, pct, rss, conns, peak in rows:
    print(f"| {tool} | {n} | {med:.0f} | {low} | {per1000:.3f} | {pct:.1f} | {rss:.1f} | {conns:.0f} | {peak:.0f} |")
print()
print("\n".join(notes))
PY
