#!/usr/bin/env bash
# Crash harness, long mode: SIGKILLs `serve` at POINTS random moments (default 1000) of backups,
# DeleteBackup, retention, scheduling and WAL streaming, restarting it on the same data directory
# and checking every invariant after each restart (crates/polarbackup/tests/crash.rs; CI runs
# the same test with 30 points).
#
#   bash bench/crash.sh [POINTS]          # from anywhere; POLARBACKUP_CRASH_SEED=N to replay
#
# Needs what the test suite needs (PostgreSQL, the Python SDKs). Prints the seed first and one
# line per point; a failing point prints the seed and count that reproduce it.
set -euo pipefail

points="${1:-1000}"
cd "$(dirname "$0")/.."
POLARBACKUP_CRASH_POINTS="$points" cargo test -p polarbackup --test crash -- --nocapture
