#!/usr/bin/env bash
# Benchmark: wall-clock time of `lab up`, a planned switchover east -> west,
# the switchover back (with the old primary rejoined each time), and `lab down`,
# over N rounds. Prints the median and range of each, as a Markdown table.
#   bench/lab-lifecycle.sh [RUNS]     (default 5; needs root, like the lab)
name=lifecycle
source "$(dirname "$0")/lib.sh"
: >"$out/times.tsv"
# Runs a command and appends "name<TAB>milliseconds" to the table; a failure stops the benchmark.
timed() {
  local name="$1"; shift
  local start end
  start=$(date +%s%N)
  if ! "$@" >"$out/$name.log" 2>&1; then
    echo "$name failed; see $out/$name.log" >&2
    exit 1
  fi
  end=$(date +%s%N)
  printf '%s\t%s\n' "$name" $(( (end - start) / 1000000 )) >>"$out/times.tsv"
}
for i in $(seq 1 "$runs"); do
  "$drover" lab down --dir "$dir" >/dev/null 2>&1 || true
  rm -rf "$dir/.drover"
  timed "lab up" "$drover" lab up --dir "$dir" --replication sync
  timed "switchover east->west" "$drover" switchover --plan "$dir/plan.yaml" --to west --yes
  timed "switchover west->east" "$drover" switchover --plan "$dir/plan.yaml" --to east --yes
  timed "lab down" "$drover" lab down --dir "$dir"
  echo "round $i done"
done
python3 - "$out/times.tsv" "$runs" <<'PY'
import collections, datetime, os, platform, statistics, sys
path, runs = sys.argv[1], sys.argv[2]
times = collections.OrderedDict()
for line in open(path):
    name, ms = line.rstrip("\n").split("\t")
    times.setdefault(name, []).append(int(ms))
print()
print(f"date {datetime.date.today()}, {os.cpu_count()} cores, {platform.platform()}, {runs} rounds")
print("| operation | median ms | range ms | rounds |")
print("|---|---|---|---|")
for name, v in times.items():
    print(f"| {name} | {statistics.median(v):.0f} | {min(v)}–{max(v)} | {len(v)} |")
PY
