#!/usr/bin/env bash
# The project's test command: dependencies, formatting, lints, then every test (no retries),
# and every benchmark at toy size (bench/smoke.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh --old-postgres

echo "==> cargo fmt --all -- --check"
cargo fmt --all -- --check

echo "==> cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

# The cargo-fuzz targets are their own workspace (fuzz/), run by bench/fuzz.sh on nightly;
# checked here on stable so that they keep building with the crates they fuzz.
echo "==> cargo check --locked --all-targets in fuzz/"
(cd fuzz && cargo check --quiet --locked --all-targets)

echo "==> cargo test --workspace"
cargo test --workspace

echo "==> bash bench/smoke.sh (every benchmark at toy size)"
bash bench/smoke.sh
