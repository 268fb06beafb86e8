#!/usr/bin/env bash
# Fuzzing: runs each cargo-fuzz target in fuzz/ for a fixed number of executions and
# prints, per target, the executions, the wall time and the crashes found, as a Markdown
# table. Nightly only (libFuzzer), so it is a benchmark, not part of `.ci/run`; every
# crash it finds becomes a regression test in the normal suite.
#   bench/fuzz.sh [RUNS] [TARGET...]   (default 1000000 executions of every target)
# Environment:
#   CARGO_TARGET_DIR  where the fuzz build goes (default fuzz/target; not the workspace's:
#                     the instrumented build would invalidate it)
#   FUZZ_SANITIZER    none (default: overflow and panic checks come from -a, debug
#                     assertions) or address
#   FUZZ_OUT          the working corpora and crash files (default /tmp/drover-fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-1000000}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(plan api_bodies vantage_report backup dns_answer)
sanitizer="${FUZZ_SANITIZER:-none}"
out="${FUZZ_OUT:-/tmp/drover-fuzz}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/fuzz/target}"

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
# The same way the README's tools are installed: from crates.io, the locked versions.
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

# Seeds: the repository's own example plans and fixtures, and fuzz/seeds/<target>.
seeds() {
  case "$1" in
    plan) echo crates/drover-core/tests/plans/good crates/drover-core/tests/plans/bad examples/aws-two-region ;;
    *) echo "fuzz/seeds/$1" ;;
  esac
}

cd fuzz
cargo +nightly fuzz build -s "$sanitizer" -a
cd ..
bin="$CARGO_TARGET_DIR/$(rustc +nightly -vV | awk '/^host:/ {print $2}')/release"
echo "| target | executions | time | exec/s | crashes |"
echo "|---|---|---|---|---|"
failed=0
for t in "${targets[@]}"; do
  mkdir -p "$out/$t/corpus" "$out/$t/artifacts"
  log="$out/$t/log"
  read -ra dirs <<<"$(seeds "$t")"
  start=$(date +%s.%N)
  set +e
  # The built binary itself, not `cargo fuzz run`: the time is the fuzzing, not cargo's
  # checks (or its wait for another build's lock).
  "$bin/$t" -runs="$runs" -artifact_prefix="$out/$t/artifacts/" -print_final_stats=1 \
    "$out/$t/corpus" "${dirs[@]}" >"$log" 2>&1
  rc=$?
  set -e
  end=$(date +%s.%N)
  secs=$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.1f", b - a}')
  # The log holds raw input bytes (the recommended dictionary): grep -a, not awk on it.
  done_runs=$(grep -a '^stat::number_of_executed_units:' "$log" | awk '{print $2}' | tail -1)
  done_runs="${done_runs:-0}"
  speed=$(awk -v n="$done_runs" -v s="$secs" 'BEGIN {printf "%.0f", (s > 0 ? n / s : 0)}')
  crashes=$(find "$out/$t/artifacts" -type f | wc -l)
  echo "| $t | $done_runs | $secs s | $speed | $crashes |"
  if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    failed=1
    echo "  $t: exit $rc; log $log; artifacts in $out/$t/artifacts" >&2
  fi
done
exit "$failed"
