#!/usr/bin/env bash
# The whole test suite: installs what is missing, then runs every test of every
# crate, including those against real PostgreSQL, Knot DNS and the netns lab.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-targets --no-fail-fast "$@"
else
  echo "test: cargo-nextest not found; using cargo test (lab tests then run one at a time)"
  cargo test --workspace --all-targets --no-fail-fast "$@" -- --test-threads=1
fi
