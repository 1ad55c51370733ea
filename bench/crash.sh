#!/usr/bin/env bash
# Crash harness, long mode: SIGKILLs `serve` at POINTS random moments (default 1000) of backups,
# DeleteBackup, retention, scheduling and WAL streaming, restarting it on the same data directory
# and checking every invariant after each restart (crates/polarbackup/tests/crash.rs; CI runs
# the same test with 30 points).
#
#   bash bench/crash.sh [POINTS] [RUNS]   # from anywhere; POLARBACKUP_CRASH_SEED=N to replay
#
# RUNS (default 1) splits the points over that many harnesses running side by side, each with
# its own PostgreSQL, data directory, server and seed: most of a point is waiting (leases,
# restarts), so three runs on two cores take about a third of the time. Each run's output goes
# to $WORK/crash-run-N.log (WORK defaults to a fresh temporary directory) and its seed is
# printed; a failing point prints the seed and count that reproduce it.
# Needs what the test suite needs (PostgreSQL, the Python SDKs).
set -euo pipefail

points="${1:-1000}"
runs="${2:-1}"
cd "$(dirname "$0")/.."
if [ "$runs" -le 1 ]; then
    POLARBACKUP_CRASH_POINTS="$points" cargo test -p polarbackup --test crash -- --nocapture
    exit
fi
WORK="${WORK:-$(mktemp -d /tmp/pbcrash-runs.XXXXXX)}"
cargo test -p polarbackup --test crash --no-run --quiet
pids=()
for run in $(seq 1 "$runs"); do
    share=$((points / runs + (run <= points % runs ? 1 : 0)))
    seed="$(python3 -c 'import random; print(random.getrandbits(63))')"
    echo "run $run: $share points, POLARBACKUP_CRASH_SEED=$seed, log $WORK/crash-run-$run.log"
    POLARBACKUP_CRASH_POINTS="$share" POLARBACKUP_CRASH_SEED="$seed" \
        cargo test -p polarbackup --test crash --quiet -- --nocapture >"$WORK/crash-run-$run.log" 2>&1 &
    pids+=("$!")
done
failed=0
for run in $(seq 1 "$runs"); do
    if wait "${pids[$((run - 1))]}"; then
        grep "points passed" "$WORK/crash-run-$run.log" || true
    else
        echo "run $run FAILED; see $WORK/crash-run-$run.log"
        failed=1
    fi
done
exit "$failed"
