#!/usr/bin/env bash
# Patroni post_bootstrap: runs once on the new cluster's first primary, with a libpq
# connection string as $1 (Patroni sets PGOPTIONS=-c synchronous_commit=local and a
# pgpass). Creates the lab app's table exactly as crates/drover-lab/src/postgres.rs does.
set -euo pipefail
psql "$1" -v ON_ERROR_STOP=1 -q <<'SQL'
SET synchronous_commit = local;
CREATE TABLE IF NOT EXISTS lab_writes (
    seq bigint PRIMARY KEY,
    region text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
SQL
