#!/usr/bin/env bash
# Benchmark: N lab drills (blackout of the primary region) with synchronous and
# with asynchronous replication, and with synchronous replication watched by three
# `drover serve` daemons (each with its own journal, or in HA mode: a 3-member etcd,
# one leader, east leading etcd and the election); 1 s checks, failure threshold 3. Prints the
# median and range of rto_ms and of lost acknowledged writes, as a Markdown table.
#   bench/lab-drills.sh [RUNS]        (default 5; needs root, like the lab)
name=drills
source "$(dirname "$0")/lib.sh"
rm -f "$out"/*.json "$out"/*.takeover
# sync and async: this drover detects and fails over. daemons: three `drover serve`
# vantages (quorum 2) detect and fail over on their own; the drill only watches.
# ha: the same with `lab up --ha` (the east blackout also takes the etcd and drover leaders).
for mode in ${DROVER_BENCH_MODES:-sync async daemons ha}; do
  case "$mode" in
    daemons) replication=sync; up_flags=(--daemons); drill_flags=(--daemons) ;;
    ha) replication=sync; up_flags=(--ha); drill_flags=(--daemons) ;;
    *) replication="$mode"; up_flags=(); drill_flags=() ;;
  esac
  for i in $(seq 1 "$runs"); do
    "$drover" lab down --dir "$dir" >/dev/null 2>&1 || true
    "$drover" lab up --dir "$dir" --replication "$replication" "${up_flags[@]}" >/dev/null
    state="$out/state-$mode-$i"
    rm -rf "$state"
    if "$drover" drill --plan "$dir/plan.yaml" --state "$state" --fault blackout:east "${drill_flags[@]}" \
        --json "$out/$mode-$i.json" >"$out/$mode-$i.log" 2>&1; then
      echo "$mode run $i: $(python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print('rto_ms', r['rto_ms'], 'lost', r['lost_acknowledged_writes'])" "$out/$mode-$i.json")"
      if [ "$mode" = ha ]; then
        # Leader takeover: the first 'this daemon leads' after the fault, in the survivors' logs.
        python3 - "$out/$mode-$i.json" "$dir" >"$out/$mode-$i.takeover" <<'PY'
import datetime, json, sys
fault = json.load(open(sys.argv[1]))["fault_at_ms"]
times = []
for region in ("west", "witness"):
    for line in open(f"{sys.argv[2]}/serve-{region}.log"):
        if "this daemon leads" in line:
            at = datetime.datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")).timestamp() * 1000
            if at > fault:
                times.append(at - fault)
print(round(min(times)) if times else "")
PY
        echo "ha run $i: new drover leader $(cat "$out/$mode-$i.takeover") ms after the fault"
      fi
    else
      echo "$mode run $i: drill failed, see $out/$mode-$i.log"
    fi
  done
done
"$drover" lab down --dir "$dir" >/dev/null
python3 - "$out" "$runs" <<'PY'
import glob, json, statistics, sys, platform, os, datetime
out, runs = sys.argv[1], sys.argv[2]
print()
print(f"date {datetime.date.today()}, {os.cpu_count()} cores, {platform.platform()}, {runs} runs each")
print("| mode | rto_ms median | rto_ms range | lost writes median | lost writes range | rpo_ms median | detected_ms median | drills |")
print("|---|---|---|---|---|---|---|---|")
for repl in ("sync", "async", "daemons", "ha"):
    reports = [json.load(open(f)) for f in sorted(glob.glob(f"{out}/{repl}-*.json"))]
    rto = [r["rto_ms"] for r in reports if r["rto_ms"] is not None]
    lost = [r["lost_acknowledged_writes"] for r in reports]
    if not reports:
        print(f"| {repl} | - | - | - | - | - | - | 0 |"); continue
    rng = lambda v: f"{min(v)}–{max(v)}" if v else "-"
    med = lambda v: f"{statistics.median(v):.0f}" if v else "-"
    rpo = [r["rpo_ms"] for r in reports if r.get("rpo_ms") is not None]
    detected = [r["timeline"]["detected"] for r in reports if r["timeline"].get("detected") is not None]
    print(f"| {repl} | {med(rto)} | {rng(rto)} | {med(lost)} | {rng(lost)} | {med(rpo)} | {med(detected)} | {len(reports)} |")
takeover = [int(open(f).read()) for f in sorted(glob.glob(f"{out}/ha-*.takeover")) if open(f).read().strip()]
if takeover:
    print()
    print(f"HA leader takeover after the blackout (ms): median {statistics.median(takeover):.0f}, range {min(takeover)}–{max(takeover)}, {len(takeover)} runs")
PY
