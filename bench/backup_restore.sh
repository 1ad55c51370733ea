#!/usr/bin/env bash
# Backup and restore benchmark: polarbackup vs pg_basebackup vs pgBackRest, same data, same run.
#
#   sudo bash bench/backup_restore.sh            # from the repository root, as root, Debian 12
#
# What it does (see BENCHMARKS.md for the results and how to read them):
#   1. cargo build --release -p polarbackup; installs pgbackrest and the Python SDKs if missing.
#   2. A throwaway PostgreSQL 15 cluster (initdb --data-checksums, as user postgres) on a free
#      loopback port, archiving through pgBackRest, loaded with pgbench data plus a poorly
#      compressible md5 table (BENCH_SIZE_MB in total, default 1536).
#   3. Backups, each BENCH_RUNS times warm plus BENCH_COLD cold runs (page cache dropped) per tool:
#        polarbackup  CreateBackup via the official Python SDK, polled with DescribeBackupTasks
#                     until Finished; timed to the server's commit of the Finished job (its
#                     "backup finished" log line), not to the poll that saw it
#        pg_basebackup -Ft -Xs --checkpoint=fast, uncompressed and --compress=client-zstd:level=1
#        pgBackRest   full, zst level 1, process-max=2, start-fast, posix repo on the same disk
#      Restores into an empty directory, BENCH_RESTORE_RUNS times each:
#        polarbackup restore, pgbackrest restore (process-max=2), tar -x of pg_basebackup's output
#        (uncompressed, and zstd -d | tar -x of the client-zstd output).
#   4. Checks the polarbackup restore with pg_verifybackup and by starting PostgreSQL on it and
#      comparing row counts with the source.
#   5. Prints a table (wall time, MiB/s, output size, CPU seconds of the tool and of PostgreSQL)
#      and the ratios; raw rows go to bench/results/<date>.tsv.
#   Everything it makes lives in one work directory that is removed on exit (trap); the servers
#   it starts are stopped by PID.
#
# Settings (environment):
#   BENCH_SIZE_MB=1536        total data size; 65 % pgbench (-s), 35 % md5 text table
#   BENCH_RUNS=3              warm runs per backup variant
#   BENCH_RESTORE_RUNS=2      runs per restore variant
#   BENCH_COLD=1              cold-cache rounds after the warm ones (page cache dropped before
#                             each backup; 0 to skip); their medians give the cold ratios
#   BENCH_MAX_LOAD=1.0        wait (up to BENCH_WAIT_LOAD_SECS=600) for the 1-min load to drop
#                             below this before measuring; the load is recorded either way
#   BENCH_POLL_INTERVAL=0.2   DescribeBackupTasks polling interval, seconds (the time Finished
#                             was first seen is kept as seen_s)
#   BENCH_PERF=0              1: one extra polarbackup backup under `perf record -a` and one
#                             restore under `perf record` (flat profiles written next to the
#                             results as <date>.perf.txt; needs perf, Debian's linux-perf)
#   BENCH_WORK_PARENT=/var/tmp  where the work directory goes (must be on the disk to measure)
#   BENCH_RESULTS_DIR=bench/results  where the .tsv, .summary.md (and .perf.txt) go
#   BENCH_KEEP=0              1: keep the work directory (servers are still stopped)
#   BENCH_BIN=                a polarbackup binary to use instead of building one (say which build)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT="$PWD"
SIZE_MB="${BENCH_SIZE_MB:-1536}"
RUNS="${BENCH_RUNS:-3}"
RESTORE_RUNS="${BENCH_RESTORE_RUNS:-2}"
COLD="${BENCH_COLD:-1}"
MAX_LOAD="${BENCH_MAX_LOAD:-1.0}"
WAIT_LOAD_SECS="${BENCH_WAIT_LOAD_SECS:-600}"
POLL="${BENCH_POLL_INTERVAL:-0.2}"
PERF="${BENCH_PERF:-0}"
KEEP="${BENCH_KEEP:-0}"
PGBIN=/usr/lib/postgresql/15/bin

BENCH_TAG=bench
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

[ "$(id -u)" = 0 ] || die "run as root (it installs packages and runs PostgreSQL as user postgres)"
[ -x "$PGBIN/initdb" ] || die "$PGBIN/initdb not found (apt-get install postgresql-15)"

# ------------------------------------------------------------------------------------------
# state for cleanup
WORK=""
PB_PID=""
PG_PID=""
PG2_PID=""
PERF_PID=""


cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    stop_pid "$PERF_PID" INT "perf"
    stop_pid "$PB_PID" TERM "polarbackup serve"
    stop_pid "$PG2_PID" INT "restored PostgreSQL"   # SIGINT = fast shutdown
    stop_pid "$PG_PID" INT "source PostgreSQL"
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        if [ "$KEEP" = 1 ]; then
            log "keeping $WORK"
        else
            log "removing $WORK"
            rm -rf "$WORK"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------------------------------
# 1. dependencies and build
ensure_pgbackrest
for tool in zstd tar setpriv du python3; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is missing"
done
bash scripts/install-deps.sh

if [ -z "${BENCH_BIN:-}" ]; then
    log "cargo build --release -p polarbackup"
    build_t0=$EPOCHREALTIME
    cargo build --release --quiet -p polarbackup
    log "build took $(awk -v a="$build_t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.0f", b-a}') s"
fi
COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
DIRTY="$(git status --porcelain --untracked-files=no -- crates Cargo.toml Cargo.lock 2>/dev/null | wc -l)"

WORK="$(mktemp -d "${BENCH_WORK_PARENT:-/var/tmp}/polarbackup-bench.XXXXXX")"
chmod 755 "$WORK"
mkdir -p "$WORK/bin" "$WORK/home" "$WORK/sock" "$WORK/sock2" "$WORK/pgbr-repo" \
    "$WORK/pgbr-log" "$WORK/pgbr-lock" "$WORK/pgbr-spool" "$WORK/pb-data"
# A private copy: other builds in this tree must not swap the binary mid-run.
cp "${BENCH_BIN:-${CARGO_TARGET_DIR:-target}/release/polarbackup}" "$WORK/bin/polarbackup"
chown -R postgres:postgres "$WORK"
BIN="$WORK/bin/polarbackup"
log "work directory $WORK (commit $COMMIT, $DIRTY modified tracked source files)"

# Everything below runs as postgres, like a real deployment of each tool. setpriv and env
# exec in place, so a server started with "${AS_PG[@]}" ... & has $! = its own PID.
AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups --
    env HOME="$WORK/home" PATH="$PGBIN:/usr/local/bin:/usr/bin:/bin" LC_ALL=C.UTF-8)

load1() { cut -d' ' -f1 /proc/loadavg; }

# CPU accounting, robust to other work on the host (wall time is not).
CLK_TCK="$(getconf CLK_TCK)"
# proc_cpu PID [1]: user+system seconds of a live process (1: plus its reaped children).
proc_cpu() {
    sed 's/.*) //' "/proc/$1/stat" | awk -v t="$CLK_TCK" -v c="${2:-0}" \
        '{ v = $12 + $13; if (c) v += $14 + $15; printf "%.2f", v / t }'
}
# PostgreSQL's CPU: the postmaster plus its reaped children (walsenders, archive-push).
pg_cpu() { proc_cpu "$PG_PID" 1; }

# ------------------------------------------------------------------------------------------
# 2. source cluster
PGDATA="$WORK/pgdata"
PORT="$(free_port)"
PORT2="$(free_port)"
PGBR_CONF="$WORK/pgbackrest.conf"
pgbr_conf "$PGBR_CONF" "$WORK/pgbr-repo" bench "$PGDATA" "$PORT" process-max=2
PGBR=(pgbackrest "--config=$PGBR_CONF" --stanza=bench)

log "initdb (port $PORT)"
as_pg "$PGBIN/initdb" -D "$PGDATA" --data-checksums -U postgres -A trust --no-locale -E UTF8 >/dev/null
cat >>"$PGDATA/postgresql.conf" <<EOF

# polarbackup benchmark
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK/sock'
wal_level = replica
max_wal_senders = 10
archive_mode = on
archive_command = 'pgbackrest --config=$PGBR_CONF --stanza=bench archive-push %p'
shared_buffers = 512MB
max_wal_size = 4GB
checkpoint_timeout = 30min
EOF
as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$WORK/pg.log" -w -t 120 start >/dev/null
PG_PID="$(head -1 "$PGDATA/postmaster.pid")"
PSQL=(as_pg "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$WORK/sock" -p "$PORT" -U postgres -d postgres)
as_pg "${PGBR[@]}" stanza-create

SCALE=$(( (SIZE_MB * 65 / 100 + 7) / 15 ))        # pgbench: ~15 MiB per scale unit
ROWS=$(( SIZE_MB * 35 / 100 * 1024 * 1024 / 128 ))  # md5 table: ~128 bytes per row
[ "$SCALE" -ge 1 ] || SCALE=1
log "loading: pgbench -i -s $SCALE, plus $ROWS rows of md5 text"
load_t0=$EPOCHREALTIME
as_pg "$PGBIN/pgbench" -i -q -s "$SCALE" -h "$WORK/sock" -p "$PORT" -U postgres postgres 2>"$WORK/pgbench.log" \
    || { cat "$WORK/pgbench.log" >&2; die "pgbench -i failed"; }
"${PSQL[@]}" -c "CREATE TABLE rnd AS SELECT g AS id, md5(random()::text) || md5(random()::text) AS a, md5(g::text) AS b FROM generate_series(1, $ROWS) g" \
    -c "VACUUM (FREEZE, ANALYZE) rnd" -c "CHECKPOINT"
log "load took $(elapsed "$load_t0" "$EPOCHREALTIME") s"
COUNT_ACCOUNTS="$("${PSQL[@]}" -At -c 'SELECT count(*) FROM pgbench_accounts')"
COUNT_RND="$("${PSQL[@]}" -At -c 'SELECT count(*) FROM rnd')"
SIZES="$("${PSQL[@]}" -At -F ' ' -c "SELECT pg_size_pretty(pg_database_size('postgres')), pg_size_pretty(pg_total_relation_size('pgbench_accounts')), pg_size_pretty(pg_total_relation_size('rnd'))")"
DATA_BYTES="$(du -sb --exclude=pg_wal "$PGDATA" | cut -f1)"
DATA_MIB="$(awk -v b="$DATA_BYTES" 'BEGIN{printf "%.0f", b/1048576}')"
log "data directory without pg_wal: $DATA_BYTES bytes ($DATA_MIB MiB); database, accounts, rnd: $SIZES"

# CPU probe: zstd -1 -T2 over 128 MiB of the md5 table's file, timed before every round. On an
# idle machine it is stable; other work on the host (invisible in this container) slows it.
RND_FILE="$("${PSQL[@]}" -At -c "SELECT pg_relation_filepath('rnd')")"
head -c 128M "$PGDATA/$RND_FILE" >"$WORK/probe.bin"
PROBE=""
cpu_probe; cpu_probe

# ------------------------------------------------------------------------------------------
# polarbackup server, account, key
log "starting polarbackup serve"
export POLARBACKUP_DATA_DIR="$WORK/pb-data"
# Log backup, scheduler and scrub off: every backup round registers a cluster, and each one's WAL
# archiver (a walsender on a permanent slot) would otherwise run through the later rounds of every
# tool, taking CPU from what is measured.
SERVE_AS=("${AS_PG[@]}")
serve pb-serve "$WORK/pb-data" POLARBACKUP_LOG=info -- --log-format json --scrub-days 0
PB_ACCOUNT="$(as_pg env POLARBACKUP_DATA_DIR="$WORK/pb-data" "$BIN" admin account create --name bench | json_field AccountId)"
PB_KEY_JSON="$(as_pg env POLARBACKUP_DATA_DIR="$WORK/pb-data" "$BIN" admin key create --account "$PB_ACCOUNT")"
PB_KEY_ID="$(json_field AccessKeyId <<<"$PB_KEY_JSON")"
PB_KEY_SECRET="$(json_field AccessKeySecret <<<"$PB_KEY_JSON")"
log "polarbackup on $PB_ENDPOINT (pid $PB_PID), account $PB_ACCOUNT"

# ------------------------------------------------------------------------------------------
# results
RESULTS_DIR="${BENCH_RESULTS_DIR:-$ROOT/bench/results}"
mkdir -p "$RESULTS_DIR"
STAMP="$(results_stamp "$RESULTS_DIR" "")"
TSV="$RESULTS_DIR/$STAMP.tsv"
MEM_GIB="$(awk '/MemTotal/{printf "%.1f", $2/1048576}' /proc/meminfo)"
DISK="$(df -h --output=source,size "$WORK" | tail -1 | tr -s ' ')"
ROTA="$(cat "/sys/block/$(basename "$(df --output=source "$WORK" | tail -1)")/queue/rotational" 2>/dev/null || echo '?')"
{
    echo "# polarbackup backup/restore benchmark, $(date -Iseconds)"
    echo "# commit=$COMMIT modified_source_files=$DIRTY binary=${BENCH_BIN:-release build}"
    echo "# machine: nproc=$(nproc) mem_gib=$MEM_GIB cpu=\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')\" disk=\"$DISK rotational=$ROTA\" kernel=$(uname -r)"
    echo "# postgres=$("$PGBIN/postgres" --version | awk '{print $3}') pgbackrest=$(pgbackrest version | awk '{print $2}') polarbackup=$("$BIN" --version | awk '{print $2}')"
    echo "# data: pgbench scale=$SCALE, rnd rows=$ROWS; database/accounts/rnd sizes: $SIZES; data_bytes_excl_pg_wal=$DATA_BYTES"
    echo "# source row counts: pgbench_accounts=$COUNT_ACCOUNTS rnd=$COUNT_RND"
    printf 'tool\tvariant\top\trun\tcache\twall_s\tdata_bytes\tmib_s\toutput_bytes\tsync_s\tcpu_s\tpg_cpu_s\tload1\tnotes\n'
} >"$TSV"
# row tool variant op run cache wall output_bytes sync_s cpu_s pg_cpu_s load notes
row() {
    local mibs
    mibs="$(awk -v b="$DATA_BYTES" -v t="$6" 'BEGIN{printf "%.1f", b/1048576/t}')"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$1" "$2" "$3" "$4" "$5" "$6" "$DATA_BYTES" "$mibs" "$7" "$8" "$9" "${10}" "${11}" \
        "${12:+${12},}probe_s=$PROBE" >>"$TSV"
    log "$(printf '%-13s %-20s %-7s %-4s %-4s %6.2f s %6.1f MiB/s out=%s sync=%ss cpu=%ss pg_cpu=%ss load=%s %s' \
        "$1" "$2" "$3" "$4" "$5" "$6" "$mibs" "$7" "$8" "$9" "${10}" "${11}" "${12}")"
}
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
timed_sync() { local t0=$EPOCHREALTIME; sync; elapsed "$t0" "$EPOCHREALTIME"; }

wait_low_load() {
    local waited=0 l
    while :; do
        l="$(load1)"
        if awk -v l="$l" -v m="$MAX_LOAD" 'BEGIN{exit !(l < m)}'; then
            log "load $l < $MAX_LOAD after ${waited}s; measuring"
            return 0
        fi
        if [ "$waited" -ge "$WAIT_LOAD_SECS" ]; then
            log "load still $l after ${waited}s; measuring anyway (recorded per run)"
            return 0
        fi
        log "load $l >= $MAX_LOAD; waiting ($waited/${WAIT_LOAD_SECS}s)"
        sleep 30
        waited=$((waited + 30))
    done
}

# ------------------------------------------------------------------------------------------
# 3. backups
PB_LAST_JOB=""
PB_CLUSTERS=0
pb_backup() { # run cache
    local run="$1" cache="$2" cluster out wall job status l s size notes cpu0 cpu1 pg0 pg1
    # One registered cluster per backup: CreateBackup allows 3 manual sets per cluster.
    PB_CLUSTERS=$((PB_CLUSTERS + 1))
    cluster="$(as_pg env POLARBACKUP_DATA_DIR="$WORK/pb-data" "$BIN" admin cluster create \
        --account "$PB_ACCOUNT" --region cn-hangzhou --engine postgresql --host 127.0.0.1 \
        --port "$PORT" --user postgres --database postgres --description "bench $PB_CLUSTERS" \
        | json_field DBClusterId)"
    [ "$cache" = cold ] && drop_caches
    l="$(load1)"
    cpu0="$(proc_cpu "$PB_PID")"; pg0="$(pg_cpu)"
    # The SDK client is a plain HTTP client; it runs as the invoking user (whose python3 has
    # the SDKs, possibly under a private pyenv).
    out="$(env POLARBACKUP_ENDPOINT="$PB_ENDPOINT" POLARBACKUP_ACCESS_KEY_ID="$PB_KEY_ID" \
        POLARBACKUP_ACCESS_KEY_SECRET="$PB_KEY_SECRET" POLARBACKUP_CLUSTER="$cluster" \
        BENCH_SERVER_PID="$PB_PID" python3 bench/pb_client.py --interval "$POLL")" || {
        echo "$out" >&2; tail -20 "$WORK/pb-serve.log" >&2; die "polarbackup backup failed"; }
    s="$(timed_sync)"
    cpu1="$(proc_cpu "$PB_PID")"; pg1="$(pg_cpu)"
    read -r wall job status notes < <(python3 - "$out" "$WORK/pb-serve.log" <<'PY'
import json, sys
sys.path.insert(0, "bench")
from job_times import job_times
o = json.loads(sys.argv[1])
fs = o["first_seen"]
cpu = o.get("server_cpu", {})
# Server-side start/finish from the JSON log (exact, unlike polling).
start, end = job_times(sys.argv[2], o["job"])
notes = []
if "Uploading" in fs and "Checking" in fs:
    notes.append("to_uploading_s=%.2f" % fs["Uploading"])
    notes.append("upload_s=%.2f" % (fs["Checking"] - fs["Uploading"]))
    notes.append("check_s=%.2f" % (fs["Finished"] - fs["Checking"]))
    if all(cpu.get(k) is not None for k in ("Uploading", "Checking", "Finished")):
        notes.append("upload_cpu_s=%.2f" % (cpu["Checking"] - cpu["Uploading"]))
        notes.append("check_cpu_s=%.2f" % (cpu["Finished"] - cpu["Checking"]))
if start and end:
    notes.append("server_job_s=%.2f" % (end - start))
# The wall time is from CreateBackup sent to the Finished job committed ("backup finished" is
# logged after the store's commit; client and server read the same clock). Finished as the
# polling client first saw it comes up to one poll interval (BENCH_POLL_INTERVAL) and one
# request later: kept as seen_s.
wall = o["wall"]
if end and o.get("start_epoch") and o["status"] == "Finished":
    wall = round(end - o["start_epoch"], 3)
    notes.append("seen_s=%.2f" % o["wall"])
notes.append("polls=%d" % o["polls"])
notes.append("client_cpu_s=%.2f" % o["client_cpu_s"])
if "set_size" in o:
    notes.append("set_size=%s" % o["set_size"])
print(wall, o["job"], o["status"], ",".join(notes))
PY
)
    size="$(dir_bytes "$WORK/pb-data/repo/backups/$job")"
    row polarbackup "zstd1-verify" backup "$run" "$cache" "$wall" "$size" "$s" \
        "$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN{printf "%.2f", b-a}')" \
        "$(awk -v a="$pg0" -v b="$pg1" 'BEGIN{printf "%.2f", b-a}')" "$l" "job=$job,$notes"
    PB_LAST_JOB="$job"
}

pgbb_backup() { # variant run cache
    local variant="$1" run="$2" cache="$3" out="$WORK/pgbb-$1" args=() t0 t1 s l size pg0 pg1
    [ "$variant" = client-zstd1 ] && args=(--compress=client-zstd:level=1)
    rm -rf "$out"
    [ "$cache" = cold ] && drop_caches
    l="$(load1)"
    pg0="$(pg_cpu)"; cpu_mark
    t0=$EPOCHREALTIME
    as_pg "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$PORT" -U postgres --checkpoint=fast -Ft -Xs \
        -D "$out" "${args[@]}"
    t1=$EPOCHREALTIME
    cpu_since
    s="$(timed_sync)"
    pg1="$(pg_cpu)"
    size="$(dir_bytes "$out")"
    row pg_basebackup "$variant" backup "$run" "$cache" "$(elapsed "$t0" "$t1")" "$size" "$s" "$CPU" \
        "$(awk -v a="$pg0" -v b="$pg1" 'BEGIN{printf "%.2f", b-a}')" "$l" "-Ft -Xs fsync"
}

pgbr_backup() { # run cache
    local run="$1" cache="$2" t0 t1 s l size label notes pg0 pg1
    [ "$cache" = cold ] && drop_caches
    l="$(load1)"
    pg0="$(pg_cpu)"; cpu_mark
    t0=$EPOCHREALTIME
    as_pg "${PGBR[@]}" --type=full backup
    t1=$EPOCHREALTIME
    cpu_since
    s="$(timed_sync)"
    pg1="$(pg_cpu)"
    label="$(readlink "$WORK/pgbr-repo/backup/bench/latest")"
    size="$(dir_bytes "$WORK/pgbr-repo/backup/bench/$label")"
    # copy phase: "backup start archive" .. "backup stop archive" in pgBackRest's own log
    notes="$(awk '/INFO: backup start archive/{s=$2} /INFO: backup stop archive/{e=$2}
        END{ if (s!="" && e!="") { split(s,a,":"); split(e,c,":"); printf "copy_phase_s=%.2f", (c[1]*3600+c[2]*60+c[3])-(a[1]*3600+a[2]*60+a[3]) } }' \
        "$WORK/pgbr-log/bench-backup.log" 2>/dev/null || true)"
    row pgbackrest "zst1-pmax2" backup "$run" "$cache" "$(elapsed "$t0" "$t1")" "$size" "$s" "$CPU" \
        "$(awk -v a="$pg0" -v b="$pg1" 'BEGIN{printf "%.2f", b-a}')" "$l" "label=$label${notes:+,$notes}"
}

wait_low_load
MEASURE_T0=$EPOCHREALTIME
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
for run in $(seq 1 "$RUNS"); do
    log "--- backup round $run/$RUNS (warm)"
    cpu_probe
    pb_backup "$run" warm
    pgbb_backup none "$run" warm
    pgbb_backup client-zstd1 "$run" warm
    pgbr_backup "$run" warm
done
case "$COLD" in ''|*[!0-9]*) die "BENCH_COLD must be a number of rounds, not '$COLD'" ;; esac
if [ "$COLD" -gt 0 ] && ! { sync && echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then
    log "cannot write /proc/sys/vm/drop_caches here; skipping the cold rounds"
    COLD=0
fi
for run in $(seq 1 "$COLD"); do
    log "--- backup round cold $run/$COLD (page cache dropped before each)"
    cpu_probe
    pb_backup "c$run" cold
    pgbb_backup none "c$run" cold
    pgbb_backup client-zstd1 "c$run" cold
    pgbr_backup "c$run" cold
done

# ------------------------------------------------------------------------------------------
# 3d. restores into an empty directory (warm: the backup was just written or read)
pb_restore() {
    local run="$1" t="$WORK/restore-pb" t0 t1 s l
    rm -rf "$t"
    l="$(load1)"
    cpu_mark
    t0=$EPOCHREALTIME
    as_pg env POLARBACKUP_DATA_DIR="$WORK/pb-data" "$BIN" restore --backup-id "$PB_LAST_JOB" \
        --target-dir "$t" >/dev/null 2>"$WORK/pb-restore.log" || { cat "$WORK/pb-restore.log" >&2; die "polarbackup restore failed"; }
    t1=$EPOCHREALTIME
    cpu_since
    s="$(timed_sync)"
    row polarbackup restore restore "$run" warm "$(elapsed "$t0" "$t1")" "$(dir_bytes "$t")" "$s" "$CPU" "" "$l" "job=$PB_LAST_JOB"
}
pgbr_restore() {
    local run="$1" t="$WORK/restore-pgbr" t0 t1 s l
    rm -rf "$t"; as_pg mkdir -m 700 "$t"
    l="$(load1)"
    cpu_mark
    t0=$EPOCHREALTIME
    as_pg "${PGBR[@]}" "--pg1-path=$t" --process-max=2 restore
    t1=$EPOCHREALTIME
    cpu_since
    s="$(timed_sync)"
    row pgbackrest "restore-pmax2" restore "$run" warm "$(elapsed "$t0" "$t1")" "$(dir_bytes "$t")" "$s" "$CPU" "" "$l" "fsyncs files"
}
tar_restore() { # variant run
    local variant="$1" run="$2" t="$WORK/restore-tar" src t0 t1 s l
    rm -rf "$t"; as_pg mkdir -m 700 "$t"
    l="$(load1)"
    cpu_mark
    t0=$EPOCHREALTIME
    if [ "$variant" = none ]; then
        src="$WORK/pgbb-none"
        as_pg tar -xf "$src/base.tar" -C "$t"
        as_pg tar -xf "$src/pg_wal.tar" -C "$t/pg_wal"
    else
        src="$WORK/pgbb-client-zstd1"
        as_pg sh -c "zstd -dc '$src/base.tar.zst' | tar -xf - -C '$t'"
        if [ -e "$src/pg_wal.tar.zst" ]; then
            as_pg sh -c "zstd -dc '$src/pg_wal.tar.zst' | tar -xf - -C '$t/pg_wal'"
        else
            as_pg tar -xf "$src/pg_wal.tar" -C "$t/pg_wal"
        fi
    fi
    t1=$EPOCHREALTIME
    cpu_since
    s="$(timed_sync)"
    row tar "x-pgbb-$variant" restore "$run" warm "$(elapsed "$t0" "$t1")" "$(dir_bytes "$t")" "$s" "$CPU" "" "$l" ""
}

for run in $(seq 1 "$RESTORE_RUNS"); do
    log "--- restore round $run/$RESTORE_RUNS"
    cpu_probe
    pb_restore "$run"
    pgbr_restore "$run"
    tar_restore none "$run"
    tar_restore client-zstd1 "$run"
done
rm -rf "$WORK/restore-pgbr" "$WORK/restore-tar"
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"
MEASURE_S="$(elapsed "$MEASURE_T0" "$EPOCHREALTIME")"

# ------------------------------------------------------------------------------------------
# 3e. the polarbackup restore is a working database
log "--- checking the polarbackup restore"
VERIFY="$(as_pg "$PGBIN/pg_verifybackup" "$WORK/restore-pb" 2>&1)" || { echo "$VERIFY" >&2; die "pg_verifybackup failed"; }
log "pg_verifybackup: $VERIFY"
as_pg "$PGBIN/pg_ctl" -D "$WORK/restore-pb" -l "$WORK/pg-restored.log" -w -t 600 \
    -o "-c port=$PORT2 -c listen_addresses='' -c unix_socket_directories='$WORK/sock2' -c archive_mode=off -c shared_buffers=128MB" \
    start >/dev/null || { tail -20 "$WORK/pg-restored.log" >&2; die "PostgreSQL did not start on the restored directory"; }
PG2_PID="$(head -1 "$WORK/restore-pb/postmaster.pid")"
R_ACCOUNTS="$(as_pg "$PGBIN/psql" -X -At -h "$WORK/sock2" -p "$PORT2" -U postgres -d postgres -c 'SELECT count(*) FROM pgbench_accounts')"
R_RND="$(as_pg "$PGBIN/psql" -X -At -h "$WORK/sock2" -p "$PORT2" -U postgres -d postgres -c 'SELECT count(*) FROM rnd')"
stop_pid "$PG2_PID" INT "restored PostgreSQL"; PG2_PID=""
RECOVERY="$(grep -m1 -o 'completed backup recovery.*\|consistent recovery state reached.*' "$WORK/pg-restored.log" || true)"
if [ "$R_ACCOUNTS" = "$COUNT_ACCOUNTS" ] && [ "$R_RND" = "$COUNT_RND" ]; then
    CHECK="OK: pg_verifybackup passed; restored PostgreSQL started; pgbench_accounts=$R_ACCOUNTS rnd=$R_RND match the source"
else
    CHECK="MISMATCH: restored pgbench_accounts=$R_ACCOUNTS rnd=$R_RND, source $COUNT_ACCOUNTS/$COUNT_RND"
fi
log "$CHECK"
{
    echo "# restore check: $CHECK ($RECOVERY)"
    echo "# load average (1/5/15 min) at start of measurements: $LOAD_START; at end: $LOAD_END; measurements took ${MEASURE_S}s"
} >>"$TSV"

# ------------------------------------------------------------------------------------------
# optional: a flat system-wide profile of one more polarbackup backup
if [ "$PERF" = 1 ] && command -v perf >/dev/null 2>&1; then
    log "--- perf: one more polarbackup backup under perf record -a"
    perf record -F 499 -a -o "$WORK/perf.data" >/dev/null 2>&1 &
    PERF_PID=$!
    sleep 1
    pb_backup perf perf
    stop_pid "$PERF_PID" INT "perf"; PERF_PID=""
    sleep 1
    {
        echo "# perf record -F 499 -a during one polarbackup backup (job $PB_LAST_JOB); by process, then by symbol"
        perf report -i "$WORK/perf.data" --stdio --sort comm 2>/dev/null | grep -v '^$' | head -25 || true
        # Thread names of polarbackup serve (pids inside a container do not match perf's).
        comms="$(cat /proc/"$PB_PID"/task/*/comm 2>/dev/null | sort -u | paste -sd, -)"
        echo "# polarbackup serve threads ($comms), by symbol (percent of all samples)"
        perf report -i "$WORK/perf.data" --stdio --comms "$comms" --sort comm,dso,sym 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40 || true
        echo "# postgres processes, by symbol"
        perf report -i "$WORK/perf.data" --stdio --comms postgres --sort dso,sym 2>/dev/null | grep -v '^#' | grep -v '^$' | head -15 || true
        # And one polarbackup restore (a separate process, so a per-process profile).
        rm -rf "$WORK/restore-pb"
        perf record -F 499 -o "$WORK/perf-restore.data" -- "${AS_PG[@]}" POLARBACKUP_DATA_DIR="$WORK/pb-data" \
            "$BIN" restore --backup-id "$PB_LAST_JOB" --target-dir "$WORK/restore-pb" >/dev/null 2>&1 || true
        echo "# perf record -F 499 of one polarbackup restore (job $PB_LAST_JOB), by symbol"
        perf report -i "$WORK/perf-restore.data" --stdio --sort comm,dso,sym 2>/dev/null | grep -v '^#' | grep -v '^$' | head -30 || true
    } >"$RESULTS_DIR/$STAMP.perf.txt"
    log "profile in $RESULTS_DIR/$STAMP.perf.txt"
fi

# ------------------------------------------------------------------------------------------
# 4. summary
python3 bench/summarize.py "$TSV" | tee "$RESULTS_DIR/$STAMP.summary.md"
log "raw numbers: $TSV"
