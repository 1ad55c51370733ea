#!/usr/bin/env bash
# What the spread change of bench/incremental.sh costs any incremental that stores changed
# blocks, whole or as byte-level deltas against the parent's block (issue 13's incremental
# goals: < 5 % / < 10 % of a full after pgbench changed 1 % of the rows).
#
#   sudo bash bench/page_delta.sh            # from the repository root, as root, Debian 12
#
# What it does:
#   1. A throwaway PostgreSQL 15 cluster (initdb --data-checksums, as user postgres, on a Unix
#      socket only), loaded with pgbench -i -s BENCH_SCALE (default 100, about 1.5 GiB), then
#      CHECKPOINT, stopped and copied (the parent).
#   2. Started again; the change of bench/incremental.sh: pgbench -n -t N, N = BENCH_CHANGE_PCT
#      (default 1) % of pgbench_accounts' rows; CHECKPOINT; stopped.
#   3. bench/page_delta.py on the two copies: the changed blocks stored whole (a block-level
#      incremental), as XOR deltas, with the parent block as zstd's dictionary, and the best of
#      those per block, each against a zstd-1 full of the same data.
#   Output goes to stdout and to bench/results/<date>-delta.md. Everything lives in one work
#   directory, removed on exit.
#
# Settings (environment):
#   BENCH_SCALE=100  BENCH_CHANGE_PCT=1  BENCH_WORK_PARENT=/var/tmp  BENCH_RESULTS_DIR=bench/results
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT="$PWD"
SCALE="${BENCH_SCALE:-100}"
CHANGE_PCT="${BENCH_CHANGE_PCT:-1}"
PGBIN=/usr/lib/postgresql/15/bin
BENCH_TAG=bench-delta
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

prepare_postgres_bench # as root: scripts/install-deps.sh (PostgreSQL 15, zstandard for the analysis)

cleanup_on_exit
WORK="$(mktemp -d "${BENCH_WORK_PARENT:-/var/tmp}/polarbackup-bench-delta.XXXXXX")"
chmod 755 "$WORK"
mkdir -p "$WORK/home" "$WORK/sock"
chown -R postgres:postgres "$WORK"
AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups --
    env HOME="$WORK/home" PATH="$PGBIN:/usr/local/bin:/usr/bin:/bin" LC_ALL=C.UTF-8)
PGDATA="$WORK/pgdata"
PSQL=(as_pg "$PGBIN/psql" -X -q -At -h "$WORK/sock" -U postgres postgres)
start() {
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$WORK/pg.log" -w -t 120 start >/dev/null
    PIDS+=("$(head -1 "$PGDATA/postmaster.pid")")
}
stop() {
    "${PSQL[@]}" -c CHECKPOINT
    stop_tracked "$(head -1 "$PGDATA/postmaster.pid")" INT "PostgreSQL"
}

as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres -A trust --no-locale -E UTF8 --data-checksums >/dev/null
printf "listen_addresses = ''\nunix_socket_directories = '%s'\nmax_wal_size = 4GB\nshared_buffers = 256MB\n" \
    "$WORK/sock" >>"$PGDATA/postgresql.conf"
start
log "loading: pgbench -i -s $SCALE"
as_pg "$PGBIN/pgbench" -i -q -s "$SCALE" -h "$WORK/sock" -U postgres postgres 2>"$WORK/pgbench-i.log" \
    || { cat "$WORK/pgbench-i.log" >&2; die "pgbench -i failed"; }
rows="$("${PSQL[@]}" -c 'SELECT count(*) FROM pgbench_accounts')"
stop
cp -a "$PGDATA" "$WORK/before"
start
n=$((rows * CHANGE_PCT / 100))
log "the change: pgbench -n -t $n"
as_pg env PGOPTIONS="-c synchronous_commit=off" "$PGBIN/pgbench" -n -t "$n" -h "$WORK/sock" \
    -U postgres postgres >"$WORK/pgbench-t.log" 2>&1 || { cat "$WORK/pgbench-t.log" >&2; die "pgbench failed"; }
distinct="$("${PSQL[@]}" -c 'SELECT count(DISTINCT aid) FROM pgbench_history')"
stop

RESULTS_DIR="${BENCH_RESULTS_DIR:-$ROOT/bench/results}"
mkdir -p "$RESULTS_DIR"
OUT="$RESULTS_DIR/$(date +%Y-%m-%d-%H%M)-delta.md"
{
    echo "# bench/page_delta.sh, $(date -Iseconds): PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), pgbench scale $SCALE ($rows accounts), change: pgbench -n -t $n ($distinct distinct accounts updated)"
    echo
    "${POLARBACKUP_PYTHON:-python3}" bench/page_delta.py "$WORK/before" "$PGDATA"
} | tee "$OUT"
log "written to $OUT"
