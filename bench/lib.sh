# Shell helpers the benchmarks share (sourced; BENCH_TAG names the benchmark in log lines).
# They use the caller's WORK (scratch directory) and AS_PG (how to run a command as postgres).

log() { printf '%s %s: %s\n' "$(date +%H:%M:%S)" "${BENCH_TAG:-bench}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
as_pg() { "${AS_PG[@]}" "$@"; }
dir_bytes() { du -sb "$@" 2>/dev/null | awk '{s+=$1} END{print s+0}'; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", b-a}'; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
stop_pid() { # pid signal what
    local pid="$1" sig="$2" what="$3" i
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    log "stopping $what (pid $pid)"
    kill "-$sig" "$pid" 2>/dev/null || true
    for i in $(seq 1 600); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    log "$what (pid $pid) did not stop; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}
# cpu_mark / cpu_since: CPU of this shell's finished children in between (the tool measured,
# with everything it waited for). Must run in this shell, not in $( ): "times" is per process.
cpu_mark() { times >"$WORK/times.mark"; }
cpu_since() {
    times >"$WORK/times.now"
    CPU="$(awk 'function s(x, a) { split(x, a, "m"); sub("s", "", a[2]); return a[1] * 60 + a[2] }
        FNR == 2 { v = s($1) + s($2); if (NR == FNR) b = v; else e = v } END { printf "%.2f", e - b }' \
        "$WORK/times.mark" "$WORK/times.now")"
}
# The machine's speed right now: recorded with each run, to tell a slow run from a slow tool.
cpu_probe() {
    local t0=$EPOCHREALTIME
    zstd -q -1 -T2 -c "$WORK/probe.bin" >/dev/null
    PROBE="$(elapsed "$t0" "$EPOCHREALTIME")"
    log "cpu probe (zstd -1 -T2, 128 MiB): ${PROBE}s"
}

# Throwaway servers (they use the caller's WORK, BIN (polarbackup), PGBIN, AS_PG, and append to PIDS,
# which the caller stops on exit).
json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
CLK_TCK="$(getconf CLK_TCK)"
# proc_cpu PID: user+system CPU seconds of a live process so far.
proc_cpu() { sed 's/.*) //' "/proc/$1/stat" | awk -v t="$CLK_TCK" '{ printf "%.2f", ($12 + $13) / t }'; }

# pg_start NAME PORT EXTRA_CONF: a throwaway PostgreSQL 15, trust on loopback.
pg_start() {
    local dir="$WORK/$1"
    as_pg "$PGBIN/initdb" -D "$dir" -U postgres -A trust --no-locale -E UTF8 >/dev/null
    printf "port = %s\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\n%b" \
        "$2" "$WORK/sock" "$3" >>"$dir/postgresql.conf"
    as_pg "$PGBIN/pg_ctl" -D "$dir" -l "$WORK/$1.log" -w -t 120 start >/dev/null
    PIDS+=("$(head -1 "$dir/postmaster.pid")")
}

# serve NAME DATA_DIR [ENV=VALUE…] -- [FLAGS…]: starts polarbackup, sets PB_ENDPOINT and PB_PID;
# as the user SERVE_AS runs it as (a command prefix such as AS_PG), if set.
serve() {
    local name="$1" data="$2" envs=() i
    shift 2
    while [ "$#" -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
    [ "${1:-}" = -- ] && shift
    ${SERVE_AS[@]+"${SERVE_AS[@]}"} env "${envs[@]}" POLARBACKUP_DATA_DIR="$data" "$BIN" serve --listen 127.0.0.1:0 \
        --scheduler off --log-backup off "$@" >"$WORK/$name.out" 2>"$WORK/$name.log" &
    PB_PID=$!
    PIDS+=("$PB_PID")
    for i in $(seq 1 300); do
        grep -q Listening "$WORK/$name.out" 2>/dev/null && break
        kill -0 "$PB_PID" 2>/dev/null || { cat "$WORK/$name.log" >&2; die "$name exited"; }
        sleep 0.1
    done
    PB_ENDPOINT="$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["Listening"])' "$WORK/$name.out")"
}
stop_serve() { stop_pid "$PB_PID" TERM "polarbackup serve"; }

# results_stamp DIR SUFFIX: the name a run's results take in DIR, <date>-HHMM; with seconds when
# DIR already has <date>-HHMM<SUFFIX>.tsv, so a second run in the same minute keeps the first's.
results_stamp() {
    local stamp
    stamp="$(date +%Y-%m-%d-%H%M)"
    [ -e "$1/$stamp$2.tsv" ] && stamp="$(date +%Y-%m-%d-%H%M%S)"
    printf '%s' "$stamp"
}

# On exit, interrupt or termination: stops every process in PIDS and removes WORK (unless KEEP=1),
# keeping the exit status. Sets WORK and PIDS empty; the caller fills them.
cleanup_on_exit() {
    WORK=""
    PIDS=()
    trap _bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}
_bench_cleanup() {
    local rc=$? pid
    set +e
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do stop_pid "$pid" INT "pid $pid"; done
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        if [ "${KEEP:-0}" = 1 ]; then log "keeping $WORK"; else rm -rf "$WORK"; fi
    fi
    exit "$rc"
}

# stop_tracked PID SIGNAL WHAT: stops a server started earlier and forgets it, so the exit
# cleanup never signals its PID again (by then another process may have it).
stop_tracked() {
    local pid="$1" kept=() p
    stop_pid "$@"
    for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || kept+=("$p"); done
    PIDS=("${kept[@]}")
}

# Debian's pgBackRest, the anchor several benchmarks measure against (as root).
ensure_pgbackrest() {
    command -v pgbackrest >/dev/null 2>&1 && return 0
    log "installing pgbackrest from Debian"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbackrest >/dev/null
}

# pgbr_conf FILE REPO STANZA PGDATA PORT [LINE...]: the pgBackRest configuration every benchmark
# measures against (zst level 1, fast start, repository REPO, logs, lock and spool under WORK),
# with the LINEs added to [global] (process-max, archive-async); its directories are made, and
# everything is owned by postgres.
pgbr_conf() {
    local file="$1" repo="$2" stanza="$3" pgdata="$4" port="$5"
    shift 5
    mkdir -p "$repo" "$WORK/pgbr-log" "$WORK/pgbr-lock" "$WORK/pgbr-spool"
    {
        cat <<EOF
[global]
repo1-path=$repo
repo1-retention-full=99
log-path=$WORK/pgbr-log
lock-path=$WORK/pgbr-lock
spool-path=$WORK/pgbr-spool
log-level-console=warn
log-level-file=info
compress-type=zst
compress-level=1
start-fast=y
EOF
        printf '%s\n' "$@"
        cat <<EOF

[$stanza]
pg1-path=$pgdata
pg1-port=$port
pg1-socket-path=$WORK/sock
pg1-user=postgres
EOF
    } >"$file"
    chown -R postgres:postgres "$file" "$repo" "$WORK/pgbr-log" "$WORK/pgbr-lock" "$WORK/pgbr-spool"
}

# As root (PostgreSQL runs as user postgres): the project's dependencies, then PostgreSQL's
# binaries in PGBIN.
prepare_postgres_bench() {
    [ "$(id -u)" = 0 ] || die "run as root (PostgreSQL runs as user postgres)"
    bash scripts/install-deps.sh
    [ -x "$PGBIN/initdb" ] || die "$PGBIN/initdb not found (apt-get install postgresql-15)"
}
