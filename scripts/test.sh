#!/usr/bin/env bash
# The project's test command: dependencies, formatting, lints, then every test (no retries).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh --old-postgres

echo "==> cargo fmt --all -- --check"
cargo fmt --all -- --check

echo "==> cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

echo "==> cargo test --workspace"
cargo test --workspace
