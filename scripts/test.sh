#!/usr/bin/env bash
# The whole test suite: installs what is missing, then runs every test of every
# crate, including those against real PostgreSQL, Knot DNS and the netns lab.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Formatting and lints first: a warning fails the suite like a failing test ([workspace.lints]).
cargo fmt --all --check
cargo clippy --workspace --all-targets --all-features --quiet -- -D warnings
# fault-injection: the daemon's test hooks (crates/drover/src/serve/faults.rs), which the
# HA lab tests need and which a release build never carries.
features=(--features drover/fault-injection)
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-targets "${features[@]}" --no-fail-fast "$@"
else
  echo "test: cargo-nextest not found; using cargo test (lab tests then run one at a time)"
  cargo test --workspace --all-targets "${features[@]}" --no-fail-fast "$@" -- --test-threads=1
fi
