#!/usr/bin/env bash
# Runs every test of Connvo Server: formatting, lints, the Rust test suites
# (unit, property, conformance, crash, protocol, benchmark smoke) and the
# end-to-end suite with the official `convex` npm client (oldest and newest
# supported versions), the API documentation validator and schemathesis
# against the OpenAPI document. Needs: cargo, node >= 20, npm, python3 (with
# venv; schemathesis is installed from PyPI into target/), curl, and a local
# PostgreSQL (127.0.0.1:5432, database test; see CONNVO_TEST_POSTGRES_URL).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "build binaries"
cargo build --workspace --bins

step "API documentation standard (connvo docs validate)"
target/debug/connvo docs validate --test-functions --file target/docs-validate.json

step "cargo test"
cargo test --workspace

step "load-generator smoke run (connvo-bench load; fails on any lost, duplicated or reordered update)"
target/debug/connvo-bench load --spawn --meetings 3 --participants 2 \
  --transcript-rate 5 --chat-rate 1 --note-rate 1 --duration 3 --warmup 1 \
  --json target/bench-smoke.json
# The batched ingest path (ingestTranscriptBatch), each chunk checked on its own.
target/debug/connvo-bench load --spawn --meetings 3 --participants 2 \
  --transcript-rate 2 --transcript-batch 20 --duration 3 --warmup 1 \
  --json target/bench-smoke-batch.json
# The same with the WAL synced inside each COMMIT (--sqlite-sync full; the
# default, pipelined, syncs it from a thread of its own).
target/debug/connvo-bench load --spawn --sqlite-sync full --meetings 3 --participants 2 \
  --transcript-rate 2 --transcript-batch 20 --chat-rate 1 --duration 3 --warmup 1 \
  --json target/bench-smoke-full.json

step "schemathesis against /openapi.json of a spawned server"
CONNVO_BIN=target/debug/connvo ./scripts/schemathesis.sh

if [ -d tests/e2e ]; then
  step "end-to-end tests (official convex client)"
  (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error && npm test)
fi
