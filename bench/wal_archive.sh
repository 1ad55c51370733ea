#!/usr/bin/env bash
# WAL archiving benchmark: polarbackup's continuous log backup vs pgBackRest archive-push
# (async, zst level 1, local repository), under the same pgbench load, same machine, same run.
#
#   sudo bash bench/wal_archive.sh               # from the repository root, as root, Debian 12
#   BENCH_SECS=15 BENCH_SCALE=10 sudo -E bash bench/wal_archive.sh     # a quick smoke run
#
# Each tool runs in its own phase on a fresh throwaway PostgreSQL 15 cluster (initdb
# --data-checksums, user postgres, a free loopback port, wal_level=replica, the configuration of
# bench/backup_restore.sh), loaded with pgbench -i -s BENCH_SCALE:
#   polarbackup  archive_mode=off; `serve --log-backup on --wal-partial-secs 10 --scheduler off`
#                with the cluster registered, so its archiver streams through its slot
#   pgBackRest   archive_mode=on, archive_command = pgbackrest archive-push (archive-async=y,
#                compress-type=zst, compress-level=1, process-max=BENCH_PGBR_PROCESS_MAX)
# Phase: a full backup (polarbackup CreateBackup through the SDK / pgbackrest backup), a
# CHECKPOINT, everything archived, then `pgbench -n -c 4 -j 2 -T 60` at full speed while
# bench/wal_bench.py probes (a committed row every 100 ms: wall time and LSN) and samples (every
# 50 ms: pg_current_wal_lsn() and the position durable in the repository). Then a point-in-time
# restore of each tool to the commit time of a probe row 5 s before the last one, timed to a
# promoted server, and checked: exactly the probe rows up to the target are there.
# Phases alternate in order across rounds (round 1: polarbackup first; round 2: pgBackRest first).
# Results: one row per tool and round in bench/results/<date>-wal.tsv, and a summary with a
# ratio row polarbackup/pgBackRest per metric in <date>-wal.summary.md.
#
# CPU seconds come from cpuacct cgroups made for the run: the polarbackup serve process; every
# pgBackRest process (archive_command moves itself into the group before it execs pgbackrest, so
# the detached async archive-push processes are counted too); PostgreSQL. Without writable
# cgroups, serve's CPU comes from /proc and pgBackRest's is not measured.
#
# Settings (environment):
#   BENCH_SCALE=30  BENCH_CLIENTS=4  BENCH_THREADS=2  BENCH_SECS=60    pgbench
#   BENCH_ROUNDS=2                rounds (each runs both tools; the order alternates)
#   BENCH_WAL_PARTIAL_SECS=10     polarbackup serve --wal-partial-secs
#   BENCH_PGBR_PROCESS_MAX=2      pgBackRest process-max (archive-push async, backup, restore)
#   BENCH_PROBE_TAIL=10           the probe stops this many seconds before the load ends
#   BENCH_PITR=1                  0: skip the point-in-time restores
#   BENCH_MAX_LOAD=1.0            before each phase, wait for the 1-min load to drop below this,
#   BENCH_WAIT_LOAD_SECS=1200       at most this long in total; the load is recorded either way
#   BENCH_WORK_PARENT=/var/tmp    where the work directory goes
#   BENCH_RESULTS_DIR=bench/results
#   BENCH_KEEP=0                  1: keep the work directory (servers are still stopped)
#   BENCH_TOOLS="polarbackup pgbackrest"  the phases to run
# The release binary is taken from ${CARGO_TARGET_DIR:-target}/release after cargo build.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT="$PWD"
SCALE="${BENCH_SCALE:-30}"
CLIENTS="${BENCH_CLIENTS:-4}"
THREADS="${BENCH_THREADS:-2}"
SECS="${BENCH_SECS:-60}"
ROUNDS="${BENCH_ROUNDS:-2}"
PARTIAL_SECS="${BENCH_WAL_PARTIAL_SECS:-10}"
PGBR_PMAX="${BENCH_PGBR_PROCESS_MAX:-2}"
PROBE_TAIL="${BENCH_PROBE_TAIL:-10}"
PITR="${BENCH_PITR:-1}"
MAX_LOAD="${BENCH_MAX_LOAD:-1.0}"
WAIT_LOAD_SECS="${BENCH_WAIT_LOAD_SECS:-1200}"
KEEP="${BENCH_KEEP:-0}"
TOOLS="${BENCH_TOOLS:-polarbackup pgbackrest}"
PGBIN=/usr/lib/postgresql/15/bin

BENCH_TAG=wal-bench
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

[ "$(id -u)" = 0 ] || die "run as root (it installs packages and runs PostgreSQL as user postgres)"
[ -x "$PGBIN/initdb" ] || die "$PGBIN/initdb not found (apt-get install postgresql-15)"
[ "$SECS" -ge "$((PROBE_TAIL + 5))" ] || die "BENCH_SECS must be at least BENCH_PROBE_TAIL + 5"

# ------------------------------------------------------------------------------------------
# state for cleanup
WORK=""
CG=""
PB_PID=""
PG_PID=""
PG2_PID=""
HELPER_PID=""


cg_remove() {
    local g i
    [ -n "$CG" ] && [ -d "$CG" ] || return 0
    for g in "$CG"/pg "$CG"/pb "$CG"/pgbr "$CG"; do
        [ -d "$g" ] || continue
        for i in $(seq 1 50); do
            rmdir "$g" 2>/dev/null && break
            sleep 0.1   # a detached archive-push may still be exiting
        done
        [ -d "$g" ] && log "could not remove cgroup $g (processes: $(tr '\n' ' ' <"$g/cgroup.procs"))"
    done
    return 0
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    stop_pid "$HELPER_PID" TERM "wal_bench.py"
    stop_pid "$PB_PID" TERM "polarbackup serve"
    stop_pid "$PG2_PID" INT "restored PostgreSQL"   # SIGINT = fast shutdown
    stop_pid "$PG_PID" INT "source PostgreSQL"
    cg_remove
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
for tool in zstd setpriv du python3 base64; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is missing"
done

log "cargo build --release -p polarbackup"
build_t0=$EPOCHREALTIME
cargo build --release --quiet -p polarbackup
log "build took $(awk -v a="$build_t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.0f", b-a}') s"
COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
DIRTY="$(git status --porcelain --untracked-files=no -- crates Cargo.toml Cargo.lock 2>/dev/null | wc -l)"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"

# Point-in-time restore is measured for polarbackup only if this build has it.
PB_PITR=0
if [ "$PITR" = 1 ] && "$TARGET_DIR/release/polarbackup" restore --help 2>/dev/null | grep -q -- '--recovery-time'; then
    PB_PITR=1
    bash scripts/install-deps.sh   # the Python SDK: the base backup is taken through CreateBackup
fi

WORK="$(mktemp -d "${BENCH_WORK_PARENT:-/var/tmp}/polarbackup-walbench.XXXXXX")"
chmod 755 "$WORK"
FREE_GB="$(df --output=avail -BG "$WORK" | tail -1 | tr -dc 0-9)"
[ "$FREE_GB" -ge 4 ] || die "only ${FREE_GB} GB free under $WORK; the run needs about 4"
mkdir -p "$WORK/bin" "$WORK/home" "$WORK/sock" "$WORK/sock2"
# A private copy: other builds in this tree must not swap the binary mid-run.
cp "$TARGET_DIR/release/polarbackup" "$WORK/bin/polarbackup"
BIN="$WORK/bin/polarbackup"
head -c 96M /dev/urandom | base64 -w0 | head -c 128M >"$WORK/probe.bin"
chown -R postgres:postgres "$WORK"
log "work directory $WORK (commit $COMMIT, $DIRTY modified tracked source files, polarbackup PITR: $PB_PITR)"

AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups --
    env HOME="$WORK/home" PATH="$PGBIN:/usr/local/bin:/usr/bin:/bin" LC_ALL=C.UTF-8)

load1() { cut -d' ' -f1 /proc/loadavg; }
json_field() { python3 -c 'import json,sys; v=json.load(sys.stdin).get(sys.argv[1]); print("" if v is None else v)' "$1"; }

CLK_TCK="$(getconf CLK_TCK)"
proc_cpu() { # PID: user+system seconds of a live process
    [ -r "/proc/$1/stat" ] || { echo ""; return 0; }
    sed 's/.*) //' "/proc/$1/stat" | awk -v t="$CLK_TCK" '{ printf "%.2f", ($12 + $13) / t }'
}

# cgroups for CPU accounting: cgroup v1 cpuacct, else v2.
CG_KIND=""
if [ -w /sys/fs/cgroup/cpuacct ] && mkdir "/sys/fs/cgroup/cpuacct/polarbackup-walbench-$$" 2>/dev/null; then
    CG="/sys/fs/cgroup/cpuacct/polarbackup-walbench-$$"; CG_KIND=v1
elif [ -e /sys/fs/cgroup/cgroup.controllers ] && mkdir "/sys/fs/cgroup/polarbackup-walbench-$$" 2>/dev/null; then
    CG="/sys/fs/cgroup/polarbackup-walbench-$$"; CG_KIND=v2
fi
if [ -n "$CG" ]; then
    mkdir "$CG/pg" "$CG/pb" "$CG/pgbr"
    # archive_command (as postgres) moves itself from pg into pgbr.
    chown postgres "$CG/cgroup.procs" "$CG/pgbr/cgroup.procs" "$CG/pg/cgroup.procs"
    log "CPU accounting in cgroup ($CG_KIND) $CG"
else
    log "no writable cgroup: pgBackRest's CPU is not measured; serve's comes from /proc"
fi
cg_cpu() { # group: CPU seconds so far
    [ -n "$CG" ] || { echo ""; return 0; }
    if [ "$CG_KIND" = v1 ]; then
        awk '{ printf "%.2f", $1 / 1e9 }' "$CG/$1/cpuacct.usage"
    else
        awk '$1 == "usage_usec" { printf "%.2f", $2 / 1e6 }' "$CG/$1/cpu.stat"
    fi
}
cg_enter() { # group: move this (sub)shell into the group
    [ -n "$CG" ] || return 0
    echo "$BASHPID" >"$CG/$1/cgroup.procs"
}

PROBE=""

LOAD_WAITED=0
wait_low_load() {
    local l
    while :; do
        l="$(load1)"
        if awk -v l="$l" -v m="$MAX_LOAD" 'BEGIN{exit !(l < m)}'; then
            log "load $l < $MAX_LOAD; measuring"
            return 0
        fi
        if [ "$LOAD_WAITED" -ge "$WAIT_LOAD_SECS" ]; then
            log "load still $l after ${LOAD_WAITED}s of waiting in total; measuring anyway (recorded per phase)"
            return 0
        fi
        log "load $l >= $MAX_LOAD; waiting ($LOAD_WAITED/${WAIT_LOAD_SECS}s)"
        sleep 30
        LOAD_WAITED=$((LOAD_WAITED + 30))
    done
}

# ------------------------------------------------------------------------------------------
# results
RESULTS_DIR="${BENCH_RESULTS_DIR:-$ROOT/bench/results}"
mkdir -p "$RESULTS_DIR"
STAMP="$(results_stamp "$RESULTS_DIR" -wal)-wal"
TSV="$RESULTS_DIR/$STAMP.tsv"
COLS=(tool round order load1 probe_s tps wal_mib gen_mib_s arch_mib_s arch_to_drained_mib_s
    max_lag_mib max_lag_s rpo_p50_s rpo_p99_s rpo_max_s probes probes_not_durable drain_s tail_durable_s
    archiver_cpu_s archiver_cpu_s_per_gib pg_side_cpu_s pg_cpu_s repo_wal_mib
    pitr_restore_s pitr_restore_cpu_s pitr_recovery_s pitr_total_s pitr_check notes)
{
    echo "# polarbackup WAL archiving benchmark, $(date -Iseconds)"
    echo "# commit=$COMMIT modified_source_files=$DIRTY"
    echo "# machine: nproc=$(nproc) mem_gib=$(awk '/MemTotal/{printf "%.1f", $2/1048576}' /proc/meminfo) cpu=\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')\" kernel=$(uname -r)"
    echo "# postgres=$("$PGBIN/postgres" --version | awk '{print $3}') pgbackrest=$(pgbackrest version | awk '{print $2}') polarbackup=$("$BIN" --version | awk '{print $2}')"
    echo "# load: pgbench -n -c $CLIENTS -j $THREADS -T $SECS, scale $SCALE; probe every 0.1 s until $PROBE_TAIL s before the end; sampler every 0.05 s"
    echo "# polarbackup: serve --log-backup on --wal-partial-secs $PARTIAL_SECS --scheduler off; durable = the archiver slot's restart_lsn (its reported flush position)"
    echo "# pgbackrest: archive-push archive-async=y compress-type=zst compress-level=1 process-max=$PGBR_PMAX, posix repo on the same disk; durable = contiguous segments in the repo (pg-side: pg_stat_archiver)"
    echo "# cpu accounting: ${CG_KIND:-none (serve from /proc)}; polarbackup PITR restore measured: $PB_PITR"
    (IFS=$'\t'; echo "${COLS[*]}")
} >"$TSV"

# ------------------------------------------------------------------------------------------
# one phase: fresh cluster, archiving by one tool, the load, the restore
PGDATA=""
PORT=""
start_source() { # tool
    local tool="$1"
    PGDATA="$WORK/pg-$tool"
    PORT="$(free_port)"
    as_pg "$PGBIN/initdb" -D "$PGDATA" --data-checksums -U postgres -A trust --no-locale -E UTF8 >/dev/null
    cat >>"$PGDATA/postgresql.conf" <<EOF

# polarbackup WAL archiving benchmark ($tool phase)
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK/sock'
wal_level = replica
max_wal_senders = 10
shared_buffers = 512MB
max_wal_size = 4GB
checkpoint_timeout = 30min
EOF
    if [ "$tool" = pgbackrest ]; then
        cat >>"$PGDATA/postgresql.conf" <<EOF
archive_mode = on
archive_command = '$WORK/bin/pgbackrest-archive-push %p'
EOF
    else
        echo "archive_mode = off" >>"$PGDATA/postgresql.conf"
    fi
    ( cg_enter pg; exec "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$PGDATA" -l "$WORK/pg-$tool.log" -w -t 120 start >/dev/null )
    PG_PID="$(head -1 "$PGDATA/postmaster.pid")"
}
psql_src() { as_pg "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$WORK/sock" -p "$PORT" -U postgres -d postgres "$@"; }

write_pgbr_conf() {
    PGBR_CONF="$WORK/pgbackrest.conf"
    pgbr_conf "$PGBR_CONF" "$WORK/pgbr-repo" bench "$PGDATA" "$PORT" archive-async=y "process-max=$PGBR_PMAX"
    # The archive command: into pgBackRest's cgroup first, so that its detached async
    # process is accounted there too.
    cat >"$WORK/bin/pgbackrest-archive-push" <<EOF
#!/bin/sh
${CG:+echo \$\$ >$CG/pgbr/cgroup.procs}
exec pgbackrest --config=$PGBR_CONF --stanza=bench archive-push "\$1"
EOF
    chmod 755 "$WORK/bin/pgbackrest-archive-push"
}

PB_DATA=""
PB_CLUSTER=""
pb_admin() { as_pg env POLARBACKUP_DATA_DIR="$PB_DATA" "$BIN" admin "$@"; }
start_serve() {
    PB_DATA="$WORK/pb-data"
    mkdir -p "$PB_DATA"; chown postgres:postgres "$PB_DATA"
    ( cg_enter pb; exec "${AS_PG[@]}" POLARBACKUP_DATA_DIR="$PB_DATA" POLARBACKUP_LOG=info "$BIN" serve \
        --listen 127.0.0.1:0 --log-format json --log-backup on --wal-partial-secs "$PARTIAL_SECS" \
        --scheduler off >"$WORK/pb-serve.out" 2>"$WORK/pb-serve.log" ) &
    PB_PID=$!
    for _ in $(seq 1 300); do
        grep -q Listening "$WORK/pb-serve.out" 2>/dev/null && break
        kill -0 "$PB_PID" 2>/dev/null || { cat "$WORK/pb-serve.log" >&2; die "polarbackup serve exited"; }
        sleep 0.1
    done
    PB_ENDPOINT="$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["Listening"])' "$WORK/pb-serve.out")"
    PB_ACCOUNT="$(pb_admin account create --name bench | json_field AccountId)"
    PB_CLUSTER="$(pb_admin cluster create --account "$PB_ACCOUNT" --region cn-hangzhou --engine postgresql \
        --host 127.0.0.1 --port "$PORT" --user postgres --database postgres --description "wal bench" \
        | json_field DBClusterId)"
    PB_SLOT="polarbackup_${PB_CLUSTER//-/_}"
    log "polarbackup serve on $PB_ENDPOINT (pid $PB_PID), cluster $PB_CLUSTER, slot $PB_SLOT"
    for _ in $(seq 1 600); do
        [ "$(psql_src -c "SELECT active FROM pg_replication_slots WHERE slot_name = '$PB_SLOT'")" = t ] && return 0
        kill -0 "$PB_PID" 2>/dev/null || { tail -20 "$WORK/pb-serve.log" >&2; die "polarbackup serve exited"; }
        sleep 0.1
    done
    tail -20 "$WORK/pb-serve.log" >&2
    die "the archiver's slot $PB_SLOT did not become active"
}

pb_base_backup() {
    local key out
    key="$(pb_admin key create --account "$PB_ACCOUNT")"
    out="$(env POLARBACKUP_ENDPOINT="$PB_ENDPOINT" POLARBACKUP_ACCESS_KEY_ID="$(json_field AccessKeyId <<<"$key")" \
        POLARBACKUP_ACCESS_KEY_SECRET="$(json_field AccessKeySecret <<<"$key")" POLARBACKUP_CLUSTER="$PB_CLUSTER" \
        python3 bench/pb_client.py --interval 0.5)" || { echo "$out" >&2; tail -20 "$WORK/pb-serve.log" >&2; die "polarbackup base backup failed"; }
    log "polarbackup base backup: $(json_field status <<<"$out") in $(json_field wall <<<"$out") s"
}

helper_args() { # tool
    if [ "$1" = polarbackup ]; then
        echo "--mode pb --slot $PB_SLOT"
    else
        echo "--mode pgbr --repo-wal $WORK/pgbr-repo/archive/bench/15-1"
    fi
}

repo_bytes() { # tool: bytes of archived WAL in its repository
    if [ "$1" = polarbackup ]; then dir_bytes "$PB_DATA/repo/wal"; else dir_bytes "$WORK/pgbr-repo/archive"; fi
}

backend_pid() { # backend_type
    psql_src -c "SELECT pid FROM pg_stat_activity WHERE backend_type = '$1' ORDER BY backend_start DESC LIMIT 1"
}

# pitr TOOL TARGET_EPOCH EXPECTED_ROWS: restore, start, promote, check. Sets PITR_* .
pitr() {
    local tool="$1" epoch="$2" expect="$3" t="$WORK/restore" t0 t1 t2 rfc pgts port2 n rows
    PITR_RESTORE="" PITR_RESTORE_CPU="" PITR_RECOVERY="" PITR_TOTAL="" PITR_CHECK=""
    rfc="$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%S.%6NZ)"
    pgts="$(date -u -d "@$epoch" '+%Y-%m-%d %H:%M:%S.%6N+00')"
    rm -rf "$t"
    cpu_mark
    t0=$EPOCHREALTIME
    if [ "$tool" = polarbackup ]; then
        as_pg env POLARBACKUP_DATA_DIR="$PB_DATA" "$BIN" restore --cluster "$PB_CLUSTER" --recovery-time "$rfc" \
            --target-dir "$t" >"$WORK/restore.out" 2>"$WORK/restore.log" \
            || { cat "$WORK/restore.log" >&2; die "polarbackup restore failed"; }
    else
        as_pg mkdir -m 700 "$t"
        as_pg pgbackrest "--config=$PGBR_CONF" --stanza=bench "--pg1-path=$t" --type=time "--target=$pgts" \
            --target-action=promote restore
    fi
    t1=$EPOCHREALTIME
    cpu_since
    PITR_RESTORE_CPU="$CPU"
    port2="$(free_port)"
    as_pg "$PGBIN/pg_ctl" -D "$t" -l "$WORK/pg-restored.log" -w -t 900 \
        -o "-c port=$port2 -c listen_addresses='' -c unix_socket_directories='$WORK/sock2' -c archive_mode=off" \
        start >/dev/null || { tail -20 "$WORK/pg-restored.log" >&2; die "PostgreSQL did not start on the $tool restore"; }
    PG2_PID="$(head -1 "$t/postmaster.pid")"
    for n in $(seq 1 9000); do
        [ "$(as_pg "$PGBIN/psql" -X -At -h "$WORK/sock2" -p "$port2" -U postgres -d postgres -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ] && break
        kill -0 "$PG2_PID" 2>/dev/null || { tail -20 "$WORK/pg-restored.log" >&2; die "the restored PostgreSQL exited"; }
        sleep 0.1
    done
    t2=$EPOCHREALTIME
    rows="$(as_pg "$PGBIN/psql" -X -At -F ' ' -h "$WORK/sock2" -p "$port2" -U postgres -d postgres \
        -c 'SELECT count(*), coalesce(max(id), 0) FROM bench_probe')"
    stop_pid "$PG2_PID" INT "restored PostgreSQL"; PG2_PID=""
    PITR_RESTORE="$(elapsed "$t0" "$t1")"
    PITR_RECOVERY="$(elapsed "$t1" "$t2")"
    PITR_TOTAL="$(elapsed "$t0" "$t2")"
    if [ "$rows" = "$expect $expect" ]; then
        PITR_CHECK="ok:$expect"
    else
        PITR_CHECK="MISMATCH:got_${rows// /_}_want_$expect"
    fi
    log "$tool PITR to $rfc: restore ${PITR_RESTORE}s (cpu ${PITR_RESTORE_CPU}s), recovery ${PITR_RECOVERY}s, total ${PITR_TOTAL}s; probe rows: $rows (want $expect) $PITR_CHECK"
    rm -rf "$t"
}

phase() { # tool round order
    local tool="$1" round="$2" order="$3" out="$WORK/out-$1-$2" l a0 a1 p0 p1 s0 s1 r0 r1 spid spid1 a
    log "=== round $round: $tool"
    start_source "$tool"
    if [ "$tool" = pgbackrest ]; then
        write_pgbr_conf
        as_pg pgbackrest "--config=$PGBR_CONF" --stanza=bench stanza-create
    fi
    log "pgbench -i -s $SCALE"
    as_pg "$PGBIN/pgbench" -i -q -s "$SCALE" -h "$WORK/sock" -p "$PORT" -U postgres postgres 2>"$WORK/pgbench-init.log" \
        || { cat "$WORK/pgbench-init.log" >&2; die "pgbench -i failed"; }
    if [ "$tool" = polarbackup ]; then
        start_serve
        [ "$PB_PITR" = 1 ] && pb_base_backup
    elif [ "$PITR" = 1 ]; then
        as_pg pgbackrest "--config=$PGBR_CONF" --stanza=bench --type=full backup
        log "pgBackRest base backup done"
    fi
    psql_src -c CHECKPOINT
    # shellcheck disable=SC2046
    python3 bench/wal_bench.py wait --sock "$WORK/sock" --port "$PORT" $(helper_args "$tool") --timeout 600 >/dev/null \
        || die "$tool did not archive the WAL before the load"
    wait_low_load
    cpu_probe
    l="$(load1)"
    if [ "$tool" = polarbackup ]; then
        spid="$(backend_pid walsender)"
        a0="$(cg_cpu pb)"; [ -n "$a0" ] || a0="$(proc_cpu "$PB_PID")"
    else
        spid="$(backend_pid archiver)"
        a0="$(cg_cpu pgbr)"
    fi
    p0="$(cg_cpu pg)"; s0="$(proc_cpu "$spid")"; r0="$(repo_bytes "$tool")"
    log "load: pgbench -c $CLIENTS -j $THREADS -T $SECS (load1 $l)"
    # shellcheck disable=SC2046
    python3 bench/wal_bench.py run --sock "$WORK/sock" --port "$PORT" $(helper_args "$tool") --out "$out" \
        --load-secs "$SECS" --probe-tail "$PROBE_TAIL" -- \
        "${AS_PG[@]}" "$PGBIN/pgbench" -n -c "$CLIENTS" -j "$THREADS" -T "$SECS" -h "$WORK/sock" -p "$PORT" -U postgres postgres &
    HELPER_PID=$!
    wait "$HELPER_PID" || { HELPER_PID=""; die "the $tool load or its probe failed"; }
    HELPER_PID=""
    if [ "$tool" = polarbackup ]; then
        a1="$(cg_cpu pb)"; [ -n "$a1" ] || a1="$(proc_cpu "$PB_PID")"
        spid1="$(backend_pid walsender)"
    else
        a1="$(cg_cpu pgbr)"
        spid1="$(backend_pid archiver)"
    fi
    p1="$(cg_cpu pg)"; s1="$(proc_cpu "$spid")"; r1="$(repo_bytes "$tool")"
    [ "$spid" = "$spid1" ] || s1=""   # the walsender was replaced: no single process to read
    a="$(python3 bench/wal_bench.py analyze --out "$out")"
    log "$tool: $a"

    # Stop the source side, then the point-in-time restore.
    stop_pid "$PB_PID" TERM "polarbackup serve"; PB_PID=""
    stop_pid "$PG_PID" INT "source PostgreSQL"; PG_PID=""
    PITR_RESTORE="" PITR_RESTORE_CPU="" PITR_RECOVERY="" PITR_TOTAL="" PITR_CHECK=""
    if [ "$PITR" = 1 ] && { [ "$tool" = pgbackrest ] || [ "$PB_PITR" = 1 ]; }; then
        pitr "$tool" "$(json_field pitr_target_epoch <<<"$a")" "$(json_field pitr_target_id <<<"$a")"
    elif [ "$PITR" = 1 ]; then
        PITR_CHECK="no --recovery-time in this build"
    fi

    python3 - "$TSV" "$a" "${COLS[*]}" <<PY
import json, sys
tsv, a, cols = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3].split()
def d(x, y):
    return "" if x == "" or y == "" else "%.2f" % (float(y) - float(x))
extra = {
    "tool": "$tool", "round": "$round", "order": "$order", "load1": "$l", "probe_s": "$PROBE",
    "wal_mib": "%.1f" % (a["wal_bytes"] / 1048576),
    "archiver_cpu_s": d("$a0", "$a1"), "pg_side_cpu_s": d("$s0", "$s1"), "pg_cpu_s": d("$p0", "$p1"),
    "repo_wal_mib": "%.1f" % (($r1 - $r0) / 1048576),
    "pitr_restore_s": "$PITR_RESTORE", "pitr_restore_cpu_s": "$PITR_RESTORE_CPU",
    "pitr_recovery_s": "$PITR_RECOVERY", "pitr_total_s": "$PITR_TOTAL", "pitr_check": "$PITR_CHECK",
}
if extra["archiver_cpu_s"]:
    extra["archiver_cpu_s_per_gib"] = "%.2f" % (float(extra["archiver_cpu_s"]) / (a["wal_bytes"] / 2**30))
notes = ["%s=%s" % (k, a[k]) for k in ("max_lag_mib_pgside", "max_lag_s_pgside", "rpo_pgside_p50_s",
         "rpo_pgside_p99_s", "rpo_pgside_max_s", "load_s", "pitr_target_id") if a.get(k) is not None]
row = []
for c in cols:
    v = extra.get(c, a.get(c))
    row.append("" if v is None else str(v))
row[-1] = ",".join(notes)
with open(tsv, "a") as f:
    f.write("\t".join(row) + "\n")
PY
    # Free the disk for the next phase (BENCH_KEEP=1 keeps the samples and probes).
    rm -rf "$PGDATA" "$WORK/pgbr-repo" "$WORK/pgbr-spool" "$WORK/pb-data"
    [ "$KEEP" = 1 ] || rm -rf "$out"
}

MEASURE_T0=$EPOCHREALTIME
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq 1 "$ROUNDS"); do
    order=(polarbackup pgbackrest)
    [ $((round % 2)) = 1 ] || order=(pgbackrest polarbackup)
    n=0
    for tool in "${order[@]}"; do
        [[ " $TOOLS " == *" $tool "* ]] || continue
        n=$((n + 1))
        phase "$tool" "$round" "$n"
    done
done
echo "# load average (1/5/15 min) at the start: $LOAD_START; at the end: $(cut -d' ' -f1-3 /proc/loadavg); took $(elapsed "$MEASURE_T0" "$EPOCHREALTIME")s" >>"$TSV"

python3 bench/wal_bench.py summarize "$TSV" | tee "$RESULTS_DIR/$STAMP.summary.md"
log "raw numbers: $TSV"
