#!/usr/bin/env bash
# The main job on one machine: install, build, bring up two real regions, black
# out the primary, let drover detect it and fail over, and print what a client saw.
#   scripts/lab-drill.sh [sync|async]
set -euo pipefail
cd "$(dirname "$0")/.."
replication="${1:-sync}"
dir="${DROVER_LAB_DIR:-/tmp/drover-lab}"
scripts/setup.sh
cargo build --release --quiet --bin drover
drover=target/release/drover
[ -n "${CARGO_TARGET_DIR:-}" ] && drover="$CARGO_TARGET_DIR/release/drover"
"$drover" lab down --dir "$dir" >/dev/null 2>&1 || true
"$drover" lab up --dir "$dir" --replication "$replication"
trap '"$drover" lab down --dir "$dir" >/dev/null' EXIT
"$drover" status --plan "$dir/plan.yaml"
"$drover" drill --plan "$dir/plan.yaml" --fault blackout:east \
  --json "$dir/../drover-drill.json" --markdown "$dir/../drover-drill.md"
echo "reports: $(dirname "$dir")/drover-drill.json and drover-drill.md"
