#!/usr/bin/env bash
# Backs up and restores 30,000 small ConfigMaps and Secrets (half each; Secrets encrypted)
# against the in-memory API-server stand-in and a local-directory store, and prints
# objects per second each way. `bench/k8s-backup.sh [COUNT]`. Figures: docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -q -p drover-backup --features testing --example backup_bench -- "${1:-30000}"
