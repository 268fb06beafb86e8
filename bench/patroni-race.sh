#!/usr/bin/env bash
# The failover race: drover against Patroni in the same lab, with the same probe, the
# same fault (a blackout of the primary region, east) and the same machine.
#   bench/patroni-race.sh [RUNS]        (default 5; needs root, like the lab)
# Each run builds a fresh synchronous lab and takes one of three systems through the
# fault, interleaved (run 1 of each, then run 2 of each, ...):
#   drover           drover's own drill: 1 s checks, failure threshold 3, then its failover
#   patroni-default  Patroni with etcd, ttl 30, loop_wait 10, retry_timeout 10 (its defaults)
#   patroni-fast     Patroni with etcd, ttl 10, loop_wait 2, retry_timeout 4
# For Patroni the lab's own PostgreSQL pair is stopped and Patroni builds a new one on
# the same addresses, user and password (bench/patroni/), and `drover drill --external`
# only probes and injects the fault. Prints one Markdown table.
# The lab's namespaces are shared by everyone on this machine: every run holds the lock
# directory /tmp/drover-lab-lock from before `lab up` until after `lab down`.
# Environment: RACE_SYSTEMS (default "drover patroni-default patroni-fast"),
# RACE_PHASE (random, default: wait 0 to loop_wait s before each Patroni drill; none),
# ETCD_MEMBERS (3: one per namespace, default; 1: the witness only), DROVER_BIN (a
# drover binary to use instead of building one; DROVER_COMMIT names its commit),
# DROVER_LAB_DIR, DROVER_BENCH_OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"
dir="${DROVER_LAB_DIR:-/tmp/drover-bench-patroni-lab}"
out="${DROVER_BENCH_OUT:-/tmp/drover-bench-patroni}"
systems="${RACE_SYSTEMS:-drover patroni-default patroni-fast}"
phase="${RACE_PHASE:-random}"
started_at=$SECONDS

scripts/setup.sh >/dev/null
race_packages=(patroni etcd-server etcd-client)
missing=()
for p in "${race_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "race: installing ${missing[*]}"
  apt-get update -qq
  # Their packaged services are not used (on a systemd host etcd-server's own unit may
  # start on 127.0.0.1; the race starts its own etcd inside the lab's namespaces).
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ -n "${DROVER_BIN:-}" ]; then
  drover="$DROVER_BIN"
else
  cargo build --release --quiet --bin drover
  drover="${CARGO_TARGET_DIR:-target}/release/drover"
fi
drover="$(cd "$(dirname "$drover")" && pwd)/$(basename "$drover")"
source bench/patroni/cluster.sh

source scripts/lab-lock.sh
lab_mine=0
# Takes our lab down (Patroni and etcd first), only while we hold the lock and only a lab
# we brought up: `drover lab down` removes the shared namespaces whoever made them.
teardown() {
  if [ "$lab_lock_held" = 1 ] && [ "$lab_mine" = 1 ]; then
    patroni_down "$dir" 2>/dev/null || true
    "$drover" lab down --dir "$dir" >/dev/null 2>&1 || true
    lab_mine=0
  fi
  lab_lock_release
}
trap teardown EXIT
trap 'exit 130' INT TERM HUP

lab_up() {
  lab_lock_take "$dir" "$drover"
  lab_mine=1
  if [ -e "$dir/.drover-lab" ]; then # ours, left by an interrupted run
    "$drover" lab down --dir "$dir" >/dev/null 2>&1 || true
  fi
  local log="$1"
  if ! "$drover" lab up --dir "$dir" --replication sync >"$log" 2>&1; then
    # Someone else's lab is up without the lock: leave it alone.
    grep -q "already up on this machine" "$log" && lab_mine=0
    echo "race: lab up failed, see $log"
    return 1
  fi
}

# Copies the run's logs out of the lab dir before `lab down` removes it.
keep_logs() {
  local dest="$1"
  mkdir -p "$dest"
  cp "$dir"/supervisor.log "$dir"/app-*.log "$dest/" 2>/dev/null || true
  local r
  for r in east west; do
    cp "$dir/patroni/$r/patroni.log" "$dest/patroni-$r.log" 2>/dev/null || true
    cp "$dir/patroni/$r/callback.log" "$dest/callback-$r.log" 2>/dev/null || true
  done
  for r in east west witness; do cp "$dir/etcd/$r.log" "$dest/etcd-$r.log" 2>/dev/null || true; done
}

# Milestones of a Patroni failover from its logs, in ms after the fault:
# west took the leader lock, the callback moved DNS, east demoted itself.
patroni_times() {
  python3 - "$1" "$2" <<'PY'
import datetime, json, os, re, sys
report, logs = sys.argv[1], sys.argv[2]
fault = json.load(open(report))["fault_at_ms"]
def patroni_ms(path, needle):
    try:
        for line in open(path, errors="replace"):
            if needle in line:
                stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
                return round(stamp.timestamp() * 1000) - fault
    except (OSError, ValueError):
        pass
    return None
def callback_ms(path, needle):
    try:
        for line in open(path):
            at, _, rest = line.partition(" ")
            if at.isdigit() and int(at) >= fault and needle in rest:
                return int(at) - fault
    except OSError:
        pass
    return None
times = {
    "leader_lock": patroni_ms(f"{logs}/patroni-west.log", "promoted self to leader"),
    "dns_switched": callback_ms(f"{logs}/callback-west.log", "dns api.app.test. -> 10.200.0.12"),
    "old_primary_demoted": patroni_ms(f"{logs}/patroni-east.log", "Demoting self"),
}
json.dump(times, open(os.path.join(os.path.dirname(report), os.path.basename(report).replace(".json", ".times.json")), "w"))
print(" ".join(f"{k} {v}" for k, v in times.items()))
PY
}

settings_of() {
  case "$1" in
    patroni-default) echo "30 10 10" ;;
    patroni-fast) echo "10 2 4" ;;
  esac
}

# One run of one system; returns non-zero when it produced no report.
run_one() {
  local system="$1" i="$2" name="$1-$2" rc=0
  local report="$out/$name.json" log="$out/$name.log"
  rm -f "$report" "$out/$name.times.json"
  lab_up "$out/$name.lab-up.log" || { teardown; return 1; }
  cut -d' ' -f1-3 /proc/loadavg >"$out/$name.loadavg"
  case "$system" in
    drover)
      "$drover" drill --plan "$dir/plan.yaml" --fault blackout:east --json "$report" >"$log" 2>&1 || rc=$?
      ;;
    patroni-*)
      # shellcheck disable=SC2046
      if ! patroni_up "$dir" $(settings_of "$system") >"$out/$name.cluster.log" 2>&1; then
        echo "race: $name: the Patroni cluster did not come up, see $out/$name.cluster.log and $out/$name/"
        rc=1
      else
        # A real outage strikes at any point of Patroni's loop: wait a random part of
        # loop_wait, so the fault does not always land at the same time after the
        # leader last renewed its lease (which decides when that lease runs out).
        if [ "$phase" = random ]; then
          local settings
          read -r -a settings <<<"$(settings_of "$system")"
          python3 -c "import random, sys; print(round(random.uniform(0, float(sys.argv[1])), 3))" "${settings[1]}" >"$out/$name.phase"
          sleep "$(cat "$out/$name.phase")"
        fi
        "$drover" drill --plan "$dir/plan.yaml" --fault blackout:east --external --json "$report" >"$log" 2>&1 || rc=$?
      fi
      ;;
  esac
  keep_logs "$out/$name"
  if [[ "$system" == patroni-* ]] && [ -f "$report" ]; then
    patroni_times "$report" "$out/$name" >/dev/null || true
  fi
  teardown
  if [ "$rc" != 0 ] || [ ! -f "$report" ]; then
    echo "race: $name failed (exit $rc), see $log"
    return 1
  fi
  echo "$name: $(python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print('rto_ms', r['rto_ms'], 'lost', r['lost_acknowledged_writes'], 'new primary', r['to'])" "$report")"
}

mkdir -p "$out"
rm -rf "${out:?}"/*
echo "race: $runs run(s) each of: $systems (lab $dir, results in $out)"
for i in $(seq 1 "$runs"); do
  for system in $systems; do
    run_one "$system" "$i" || true
  done
done

{
  echo "command: bench/patroni-race.sh $runs (ETCD_MEMBERS=$ETCD_MEMBERS, RACE_PHASE=$phase)"
  if [ -n "${DROVER_COMMIT:-}" ]; then
    echo "commit: $DROVER_COMMIT"
  else
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- ':(glob)crates/*/src/**' 2>/dev/null || echo ' (with uncommitted changes to crates/*/src)')"
  fi
  echo "versions: $("$drover" --version), $(patroni --version), etcd $(etcd --version | awk '/^etcd Version/ {print $3}'), $("/usr/lib/postgresql/15/bin/postgres" --version)"
  echo "runtime_s: $((SECONDS - started_at))"
} >"$out/meta.txt"

python3 - "$out" "$runs" "$systems" <<'PY'
import datetime, glob, json, os, platform, statistics, sys
out, runs, systems = sys.argv[1], sys.argv[2], sys.argv[3].split()
settings = {
    "drover": "drover: checks every 1 s, timeout 500 ms, failure threshold 3; failover runbook fence, promote, switch, verify",
    "patroni-default": "Patroni: ttl 30, loop_wait 10, retry_timeout 10 (its defaults)",
    "patroni-fast": "Patroni: ttl 10, loop_wait 2, retry_timeout 4",
}
labels = {
    "drover": "drover (1 s checks, threshold 3)",
    "patroni-default": "Patroni, defaults (ttl 30, loop_wait 10)",
    "patroni-fast": "Patroni, ttl 10, loop_wait 2",
}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((int(l.split()[1]) // 1024 // 1024 for l in open("/proc/meminfo") if l.startswith("MemTotal")), "?")
meta = dict(l.rstrip("\n").split(": ", 1) for l in open(f"{out}/meta.txt"))
print()
print(f"- **Date:** {datetime.date.today()}")
print(f"- **Machine:** {os.cpu_count()} cores ({cpu}), {mem} GiB RAM, Linux {platform.release()}")
print(f"- **Command:** `{meta['command']}`, commit {meta['commit']}")
print(f"- **Versions:** {meta['versions']}")
print(f"- **Runtime:** {int(meta['runtime_s']) // 60} min {int(meta['runtime_s']) % 60} s")
loads = [float(open(f).read().split()[0]) for f in glob.glob(f"{out}/*.loadavg")]
if loads:
    print(f"- **Load average (1 min) when each run started:** {min(loads):.2f}–{max(loads):.2f}")
print()
print("| system | runs | rto_ms median | rto_ms range | lost writes median | lost writes range |")
print("|---|---|---|---|---|---|")
rng = lambda v: f"{min(v)}–{max(v)}" if v else "-"
med = lambda v: f"{statistics.median(v):.0f}" if v else "-"
for s in systems:
    reports = [json.load(open(f)) for f in sorted(glob.glob(f"{out}/{s}-[0-9]*.json")) if not f.endswith(".times.json")]
    rto = [r["rto_ms"] for r in reports if r["rto_ms"] is not None]
    lost = [r["lost_acknowledged_writes"] for r in reports]
    failed = int(runs) - len(reports)
    note = f" ({failed} failed)" if failed else ""
    print(f"| {labels[s]} | {len(reports)}{note} | {med(rto)} | {rng(rto)} | {med(lost)} | {rng(lost)} |")
print()
print("Where the time goes (medians, ms after the fault):")
print()
print("| system | detected / leader lock taken | promoted | DNS switched | old primary demoted itself | first acknowledged write |")
print("|---|---|---|---|---|---|")
for s in systems:
    rows = []
    for f in sorted(glob.glob(f"{out}/{s}-[0-9]*.json")):
        if f.endswith(".times.json"):
            continue
        r = json.load(open(f))
        t = r["timeline"]
        if s == "drover":
            rows.append((t.get("detected"), t.get("promoted"), t.get("switched"), None, t.get("first_success")))
        else:
            try:
                x = json.load(open(f.replace(".json", ".times.json")))
            except OSError:
                x = {}
            rows.append((x.get("leader_lock"), None, x.get("dns_switched"), x.get("old_primary_demoted"), t.get("first_success")))
    cols = []
    for k in range(5):
        v = [row[k] for row in rows if row[k] is not None]
        cols.append(med(v) if v else "—")
    print(f"| {labels[s]} | " + " | ".join(cols) + " |")
print()
for s in systems:
    print(f"- {settings[s]}")
PY
