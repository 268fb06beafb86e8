# Shared by the lab benchmarks: source it after setting `name` (used for default paths).
# Sets runs, dir, out and drover; installs the lab's packages, builds drover in
# release mode, and takes the lab down on exit whatever happens.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs="${1:-5}"
dir="${DROVER_LAB_DIR:-/tmp/drover-bench-$name-lab}"
out="${DROVER_BENCH_OUT:-/tmp/drover-bench-$name}"
scripts/setup.sh >/dev/null
# DROVER_BENCH_BIN: measure that binary instead (say which build in the figures).
if [ -n "${DROVER_BENCH_BIN:-}" ]; then
  drover="$DROVER_BENCH_BIN"
else
  cargo build --release --quiet --bin drover
  drover="${CARGO_TARGET_DIR:-target}/release/drover"
fi
mkdir -p "$out"
# One lab per machine: tests and other benchmarks hold this lock while theirs is up.
source scripts/lab-lock.sh
lab_lock_take "$dir" "$drover"
trap '"$drover" lab down --dir "$dir" >/dev/null 2>&1 || true; lab_lock_release' EXIT
