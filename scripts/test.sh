#!/usr/bin/env bash
# Runs every test of Connvo Server: formatting, lints, the Rust test suites
# (unit, property, conformance, crash, protocol, benchmark smoke) and the
# end-to-end suite with the official `convex` npm client (oldest and newest
# supported versions). Needs: cargo, node >= 20, npm.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "build binaries"
cargo build --workspace --bins

step "cargo test"
cargo test --workspace

if [ -d tests/e2e ]; then
  step "end-to-end tests (official convex client)"
  (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error && npm test)
fi
