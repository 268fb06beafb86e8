#!/usr/bin/env bash
# Benchmark: an idle-connection flood against west's daemon during a lab blackout of
# east (three `drover serve` daemons, sync replication). Two flood processes hold
# 10,000 connections each that never send a byte, and replace 1,000 a second each;
# meanwhile /healthz on west is timed every 200 ms and west's resident memory read.
# Prints per run: the drill's rto_ms and lost writes, /healthz answers and failures,
# their median and slowest time, west's memory before, at peak, and 15 s after the
# flood; then the median and range over the runs as a Markdown table.
#   bench/api-flood.sh [RUNS]        (default 3; needs root, like the lab)
name=api-flood
source "$(dirname "$0")/lib.sh"
flood=crates/drover/tests/support/flood.py
rm -f "$out"/*.json "$out"/*.row
west=10.200.0.12
rss() { # west daemon's VmRSS in KiB
  local pid
  pid="$(pgrep -f -- "serve --vantage west" | head -1)"
  awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"
}
for i in $(seq 1 "$runs"); do
  "$drover" lab down --dir "$dir" >/dev/null 2>&1 || true
  "$drover" lab up --dir "$dir" --daemons --replication sync >/dev/null
  before="$(rss)"
  pids=()
  for f in 0 1; do
    python3 "$flood" "$west" 7070 10000 1000 "$out/flood-$f.status" & pids+=($!)
  done
  until [ "$(cat "$out"/flood-*.status 2>/dev/null | awk '{s+=$1} END {print s+0}')" -ge 20000 ]; do sleep 0.2; done
  # Time /healthz on west and track west's memory while the flood and the drill run.
  python3 - "$dir/secrets/pki/ca.pem" "https://$west:7070/healthz" "$(pgrep -f -- "serve --vantage west" | head -1)" \
    >"$out/watch-$i.log" <<'PY' & watcher=$!
import ssl, sys, time, urllib.request
context = ssl.create_default_context(cafile=sys.argv[1])
while True:
    started = time.monotonic()
    try:
        code = urllib.request.urlopen(sys.argv[2], context=context, timeout=5).status
    except Exception:
        code = 0
    print(code, time.monotonic() - started)
    rss = next((l.split()[1] for l in open(f"/proc/{sys.argv[3]}/status") if l.startswith("VmRSS:")), "0")
    print("rss", rss, flush=True)
    time.sleep(0.2)
PY
  "$drover" drill --plan "$dir/plan.yaml" --state "$out/state-$i" --fault blackout:east --daemons \
    --json "$out/run-$i.json" >"$out/run-$i.log" 2>&1 || echo "run $i: the drill failed (see $out/run-$i.log)"
  kill "${pids[@]}" "$watcher" 2>/dev/null || true
  wait "${pids[@]}" "$watcher" 2>/dev/null || true
  sleep 15
  after="$(rss)"
  python3 - "$out/run-$i.json" "$out/watch-$i.log" "$before" "$after" >"$out/run-$i.row" <<'PY'
import json, statistics, sys
r = json.load(open(sys.argv[1]))
times, failed, peak = [], 0, 0
for line in open(sys.argv[2]):
    a, b = line.split()
    if a == "rss":
        peak = max(peak, int(b or 0))
    elif a == "200":
        times.append(float(b) * 1000)
    else:
        failed += 1
print(json.dumps({"rto_ms": r["rto_ms"], "lost": r["lost_acknowledged_writes"], "answers": len(times), "failed": failed,
                  "median_ms": round(statistics.median(times), 1), "slowest_ms": round(max(times), 1),
                  "rss_before_mib": round(int(sys.argv[3]) / 1024), "rss_peak_mib": round(peak / 1024),
                  "rss_after_mib": round(int(sys.argv[4]) / 1024)}))
PY
  echo "run $i: $(cat "$out/run-$i.row")"
done
python3 - "$out" <<'PY'
import glob, json, statistics, sys
rows = [json.loads(open(f).read()) for f in sorted(glob.glob(f"{sys.argv[1]}/run-*.row"))]
print("| figure | median | range |\n|---|---|---|")
for key in ("rto_ms", "lost", "answers", "failed", "median_ms", "slowest_ms", "rss_before_mib", "rss_peak_mib", "rss_after_mib"):
    values = [r[key] for r in rows if r.get(key) is not None]
    if values:
        print(f"| {key} | {statistics.median(values)} | {min(values)}–{max(values)} |")
PY
