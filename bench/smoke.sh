#!/usr/bin/env bash
# Every benchmark at toy size, so a change that breaks one is found by the test command rather
# than at the next measurement. Nothing is measured: each script's own checks (the restore
# compared with its source, the SDK reading the seeded jobs back, every backup Finished) and its
# exit status are the test. Uses the debug binaries; results go to a temporary directory.
#
#   sudo bash bench/smoke.sh          # from the repository root, as root (scripts/test.sh runs it)
#
# Not covered here: the moto part of bench/api.sh (a PyPI install of moto[server] for one
# number), bench/wal_archive.sh, bench/scaleout.sh, and the long bench/crash.sh and bench/fuzz.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/smoke.sh: run as root" >&2; exit 1; }

target="${CARGO_TARGET_DIR:-target}"
cargo build --quiet -p polarbackup -p polarbackup-bench-api --bins
bins="$(cd "$target/debug" && pwd)"
results="$(mktemp -d "${TMPDIR:-/tmp}/polarbackup-bench-smoke.XXXXXX")"
trap 'rm -rf "$results"' EXIT
export BENCH_RESULTS_DIR="$results" BENCH_MAX_LOAD=1000

step() { echo "==> bench smoke: $1 ($(date +%T))"; }

step "bench/api.sh (api, bare, memory, metrics)"
BENCH_BIN_DIR="$bins" BENCH_PARTS=api,bare,memory,metrics BENCH_API_SIZES="200 1000" \
    BENCH_API_CLUSTERS=40 BENCH_API_HOT=5 BENCH_API_SECONDS=1 BENCH_API_WARMUP=1 \
    BENCH_MEM_SCALE=1 BENCH_MEM_VARIANTS="default bin:$bins default bin:$bins" bash bench/api.sh >"$results/api.log" 2>&1 \
    || { tail -40 "$results/api.log" >&2; exit 1; }

step "bench/incremental.sh (PostgreSQL 15 and 18)"
BENCH_BIN="$bins/polarbackup" BENCH_SCALE=2 bash bench/incremental.sh >"$results/incr.log" 2>&1 \
    || { tail -40 "$results/incr.log" >&2; exit 1; }

step "bench/backup_restore.sh"
BENCH_BIN="$bins/polarbackup" BENCH_SIZE_MB=48 BENCH_RUNS=1 BENCH_RESTORE_RUNS=1 BENCH_COLD=0 \
    bash bench/backup_restore.sh >"$results/backup_restore.log" 2>&1 \
    || { tail -40 "$results/backup_restore.log" >&2; exit 1; }
step "bench/page_delta.sh"
BENCH_SCALE=1 bash bench/page_delta.sh >"$results/page_delta.log" 2>&1 \
    || { tail -40 "$results/page_delta.log" >&2; exit 1; }
step "bench/fsync_tail.py"
python3 bench/fsync_tail.py "$results" 50 1 1 >"$results/fsync_tail.log" 2>&1 \
    || { tail -40 "$results/fsync_tail.log" >&2; exit 1; }

step "every benchmark ran"
