#!/usr/bin/env bash
# The front door at scale (issue 13, items 4 and 5), in one run on this machine:
#   api     DescribeBackupTasks requests/s, p50 and p99 with the SQLite store holding 1k, 100k
#           and 1M jobs across 10k clusters, called by a RAM user whose custom policy allows
#           polardb:DescribeBackupTasks, every request V3-signed (ACS3-HMAC-SHA256) with its own
#           key and a fresh nonce by the load generator (crates/polarbackup-bench-api).
#   bare    the same generator against polarbackup-bench-bare: hyper answering the same body
#           with no work (the limit).
#   moto    the same generator against moto_server (PyPI moto[server]) answering RDS
#           DescribeDBSnapshots with a similar payload (as many snapshots per instance as jobs
#           per cluster). Requests are SigV4-signed by the generator (--protocol sigv4); moto
#           checks no signature.
#   memory  serve's VmRSS/VmHWM with 10k clusters and 1M jobs, idle and while two backups of
#           real throwaway PostgreSQL 15 clusters (pgbench -i -s BENCH_MEM_SCALE) run.
#   metrics one GET /metrics (--metrics-listen) with every cluster of the largest store: time,
#           size and series, and serve's memory after it.
#   ab      two builds compared under the same load: A (the binaries used above) and B
#           (BENCH_AB_BIN_DIR), each serving its own copy of one store of the largest size,
#           alternated A B, B A, ... for BENCH_AB_ROUNDS rounds (16 connections). A makes the
#           store, so A must be the build with the older schema. Run it alone (BENCH_PARTS=ab).
# Then the ratios against the issue's goals. Rows go to bench/results/<date>-api.tsv, the
# summary to <date>-api.summary.md.
#
#   sudo bash bench/api.sh                                         # from the repository root
#   BENCH_API_SIZES="1000 5000" BENCH_API_CLUSTERS=200 BENCH_API_SECONDS=2 BENCH_MEM_SCALE=1 \
#       sudo -E bash bench/api.sh                                  # smoke run
#
# The store is made by the server's own commands: `admin` makes the account, RAM user, policy,
# keys and a template cluster; the server's worker writes a template job (a backup of a cluster
# on a port where nothing listens fails at once, with its failed set). bench/api_seed.py then
# copies those rows in bulk (new ids, clusters and times only), and bench/api_check.py reads
# them back through the official SDK as the RAM user before anything is measured.
#
# Which clusters are asked: BENCH_API_HOT clusters in turn (--vary), each with 7 jobs in the last
# 7 days (the server's default job history), so every size answers the same body. The other
# jobs are history, older than 8 days, dealt over all clusters: at 1M, ~100 per cluster, on the
# same index the query walks, but listed by no call.
#
# Settings (environment):
#   BENCH_API_SIZES="1000 100000 1000000"  total jobs in the store, in increasing order
#   BENCH_API_CLUSTERS=10000   BENCH_API_HOT=100   clusters stored / clusters asked
#   BENCH_API_SECONDS=15  BENCH_API_WARMUP=3  BENCH_API_CONNECTIONS=16   per measurement
#   BENCH_API_LATENCY_CONNECTIONS=1   a second measurement with this many connections (0: none):
#                         latency without queueing (with 16 closed-loop connections, p50 is
#                         about 16 / requests/s whatever the server does per request)
#   BENCH_MEM_SCALE=10    pgbench scale of each of the two clusters backed up (memory part)
#   BENCH_MEM_VARIANTS="default MALLOC_ARENA_MAX=2"   the memory part once per word: serve as
#                         it is, with that environment setting, or (bin:DIR) DIR/polarbackup
#                         instead; "bin:A bin:B bin:B bin:A" compares two builds. Each backs up
#                         both databases, through clusters of its own every third word (a
#                         cluster takes 3 manual backups a day)
#   BENCH_PARTS=api,bare,moto,memory,metrics   which parts to run (bare, memory and metrics
#                         need api first; ab is not in the default)
#   BENCH_METRICS_SCRAPES=5   scrapes timed in the metrics part
#   BENCH_AB_BIN_DIR=DIR  BENCH_AB_ROUNDS=3   the ab part's build B and its rounds
#   BENCH_PERF=0          1: perf record serve during the largest size (-> <date>-api.perf.txt)
#   BENCH_BIN_DIR=DIR     take polarbackup, polarbackup-bench-api and polarbackup-bench-bare
#                         from DIR instead of building them in release mode (say which build)
#   BENCH_WORK_PARENT=/var/tmp  BENCH_RESULTS_DIR=bench/results  BENCH_KEEP=0
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT="$PWD"
SIZES="${BENCH_API_SIZES:-1000 100000 1000000}"
NCLUSTERS="${BENCH_API_CLUSTERS:-10000}"
HOT="${BENCH_API_HOT:-100}"
RECENT=7
API_SECONDS="${BENCH_API_SECONDS:-15}"
WARMUP="${BENCH_API_WARMUP:-3}"
CONNECTIONS="${BENCH_API_CONNECTIONS:-16}"
LAT_CONNECTIONS="${BENCH_API_LATENCY_CONNECTIONS:-1}"
MEM_SCALE="${BENCH_MEM_SCALE:-10}"
MEM_VARIANTS="${BENCH_MEM_VARIANTS:-default MALLOC_ARENA_MAX=2}"
PARTS=",${BENCH_PARTS:-api,bare,moto,memory,metrics},"
PERF="${BENCH_PERF:-0}"
AB_BIN_DIR="${BENCH_AB_BIN_DIR:-}"
AB_ROUNDS="${BENCH_AB_ROUNDS:-3}"
KEEP="${BENCH_KEEP:-0}"
PGBIN=/usr/lib/postgresql/15/bin

BENCH_TAG=api
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

# The ab part makes its own store of the largest size, as the api part does: one per run.
if [[ $PARTS == *,ab,* && $PARTS != ,ab, ]]; then
    die "BENCH_PARTS=$BENCH_PARTS: the ab part runs alone (BENCH_PARTS=ab)"
fi
prepare_postgres_bench
if [[ $PARTS == *,moto,* ]] && ! python3 -c 'import moto.server, boto3' 2>/dev/null; then
    log "installing moto[server] (PyPI)"
    python3 -m pip install --quiet 'moto[server]' boto3
fi

cleanup_on_exit

BIN_DIR="${BENCH_BIN_DIR:-}"
if [ -z "$BIN_DIR" ]; then
    log "cargo build --release -p polarbackup -p polarbackup-bench-api"
    cargo build --release --quiet -p polarbackup -p polarbackup-bench-api
    BIN_DIR="${CARGO_TARGET_DIR:-target}/release"
fi
COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
WORK="$(mktemp -d "${BENCH_WORK_PARENT:-/var/tmp}/polarbackup-api.XXXXXX")"
chmod 755 "$WORK"
mkdir -p "$WORK/bin" "$WORK/home" "$WORK/sock"
# Private copies: other builds in this tree must not swap a binary mid-run.
cp "$BIN_DIR/polarbackup" "$BIN_DIR/polarbackup-bench-api" "$BIN_DIR/polarbackup-bench-bare" "$WORK/bin/"
BIN="$WORK/bin/polarbackup"
LOADGEN="$WORK/bin/polarbackup-bench-api"
chown -R postgres:postgres "$WORK"
AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups --
    env HOME="$WORK/home" PATH="$PGBIN:/usr/local/bin:/usr/bin:/bin" LC_ALL=C.UTF-8)

RESULTS_DIR="${BENCH_RESULTS_DIR:-$ROOT/bench/results}"
mkdir -p "$RESULTS_DIR"
STAMP="$(results_stamp "$RESULTS_DIR" -api)"
TSV="$RESULTS_DIR/$STAMP-api.tsv"
{
    echo "# polarbackup API benchmark (issue 13), $(date -Iseconds), commit=$COMMIT binaries=${BENCH_BIN_DIR:-release build}"
    echo "# machine: nproc=$(nproc) cpu=\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')\" kernel=$(uname -r)"
    echo "# clusters=$NCLUSTERS hot=$HOT recent_per_hot=$RECENT connections=$CONNECTIONS seconds=$API_SECONDS warmup=$WARMUP"
    printf 'part\tvariant\tjobs\tvalue\tunit\tdetail\tload1\n'
} >"$TSV"
row() { # part variant jobs value unit detail
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" "$(cut -d' ' -f1 /proc/loadavg)" >>"$TSV"
    log "$(printf '%-6s %-8s %-8s %10s %-6s %s' "$@")"
}
# proc_mem PID: "VmRSS VmHWM" in KiB.
proc_mem() { awk '/^VmRSS:/ {r=$2} /^VmHWM:/ {h=$2} END {print r, h}' "/proc/$1/status"; }
# cpu_ticks: "stolen all" ticks of every vCPU so far (/proc/stat): the time the hypervisor ran
# something else while a vCPU of this machine had work, and all time.
cpu_ticks() { awk '/^cpu / {t = 0; for (i = 2; i <= 9; i++) t += $i; print $9, t}' /proc/stat; }
# loadgen ARGS…: one measurement; prints the generator's JSON line (CONNS overrides the
# connection count) and leaves in $WORK/steal the share of the vCPUs' time the host stole
# meanwhile (api_row adds it to the row).
loadgen() {
    local before status=0
    before="$(cpu_ticks)"
    "$LOADGEN" --connections "${CONNS:-$CONNECTIONS}" --seconds "$API_SECONDS" --warmup "$WARMUP" "$@" || status=$?
    python3 -c 'import sys; s0, t0, s1, t1 = map(int, sys.argv[1:5])
print("%.1f" % (100.0 * (s1 - s0) / (t1 - t0)) if t1 > t0 else "n/a")' $before $(cpu_ticks) >"$WORK/steal"
    return "$status"
}
# fsync_ms: the median of 50 fsyncs of an 8 KiB rewrite in $WORK, the floor of a durable nonce
# write: with C closed-loop connections, requests/s cannot pass C / (commit latency).
fsync_ms() {
    python3 -c 'import os, sys, time
p = os.path.join(sys.argv[1], "fsync.probe"); fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o600); ts = []
for i in range(50):
    os.pwrite(fd, b"x" * 8192, 0); t = time.perf_counter(); os.fsync(fd); ts.append(time.perf_counter() - t)
os.close(fd); os.unlink(p); ts.sort(); print("%.3f" % (ts[25] * 1e3))' "$WORK"
}
# cpu_per_request CPU0 CPU1 JSON: serve's CPU microseconds per request over warm-up and
# measurement (the warm-up counted at the measured rate).
cpu_per_request() {
    python3 -c 'import json, sys
o = json.loads(sys.argv[3]); n = float(o["rps"]) * (float(sys.argv[4]) + float(sys.argv[5]))
print("%.0f" % ((float(sys.argv[2]) - float(sys.argv[1])) * 1e6 / n) if n else "n/a")' "$1" "$2" "$3" "$WARMUP" "$API_SECONDS"
}
# api_row PART VARIANT JOBS JSON [DETAIL]: the generator's numbers as a row.
api_row() {
    local fields
    fields="$(python3 -c 'import json,sys; o=json.loads(sys.argv[1])
print(o["rps"], "p50_ms=%s,p99_ms=%s,requests=%s,errors=%s,mean_body_bytes=%s,reconnects=%s,protocol=%s,connections=%s" % (
    o["p50_ms"], o["p99_ms"], o["requests"], o["errors"], o["mean_body_bytes"], o["reconnects"], o["protocol"], o["connections"]))' "$4")"
    row "$1" "$2" "$3" "${fields%% *}" "req/s" "${fields#* }${5:+,$5},steal_pct=$(cat "$WORK/steal" 2>/dev/null || echo n/a)"
}

DATA="$WORK/data"
DB="$DATA/metadata.sqlite"
admin() { POLARBACKUP_DATA_DIR="$DATA" "$BIN" admin "$@"; }
# pb_env ENDPOINT KEY_ID KEY_SECRET CLUSTER CMD…: CMD with the SDK clients' environment (the
# secret is exported, never an argument).
pb_env() (
    export POLARBACKUP_ENDPOINT="$1" POLARBACKUP_ACCESS_KEY_ID="$2" POLARBACKUP_ACCESS_KEY_SECRET="$3" \
        POLARBACKUP_CLUSTER="$4"
    shift 4
    exec "$@"
)

# ------------------------------------------------------------------------------------------
# The store: account, RAM user with a policy, keys, a template cluster and job, then bulk rows.
make_store() {
ACCOUNT="$(admin account create --name bench-api | json_field AccountId)"
KEY_JSON="$(admin key create --account "$ACCOUNT")"
ACC_KEY_ID="$(json_field AccessKeyId <<<"$KEY_JSON")"
ACC_KEY_SECRET="$(json_field AccessKeySecret <<<"$KEY_JSON")"
USER_ID="$(admin user create --account "$ACCOUNT" --name bench-reader | json_field UserId)"
printf '%s\n' '{"Version": "1", "Statement": [{"Effect": "Allow", "Action": "polardb:DescribeBackupTasks", "Resource": "acs:polardb:*:*:dbcluster/*"}]}' \
    >"$WORK/policy.json"
admin policy create --account "$ACCOUNT" --name BenchDescribeBackupTasks --document-file "$WORK/policy.json" >/dev/null
admin policy attach --user "$USER_ID" --policy BenchDescribeBackupTasks >/dev/null
KEY_JSON="$(admin key create --user "$USER_ID")"
KEY_ID="$(json_field AccessKeyId <<<"$KEY_JSON")"
KEY_SECRET="$(json_field AccessKeySecret <<<"$KEY_JSON")"
unset KEY_JSON
# The template cluster: on a port where nothing listens, so its backup fails at once.
DEAD_PORT="$(free_port)"
TEMPLATE_CLUSTER="$(admin cluster create --account "$ACCOUNT" --region cn-hangzhou --engine postgresql \
    --host 127.0.0.1 --port "$DEAD_PORT" --user postgres --description "bench 0" | json_field DBClusterId)"
serve api-template "$DATA" -- --workers 1
# pb_client.py exits 1 for a Failed job: that is the point here.
pb_env "$PB_ENDPOINT" "$ACC_KEY_ID" "$ACC_KEY_SECRET" "$TEMPLATE_CLUSTER" \
    python3 bench/pb_client.py --interval 0.1 >"$WORK/template.json" || true
TEMPLATE_JOB="$(python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); assert o["status"]=="Failed", o; print(o["job"])' "$WORK/template.json")"
stop_serve
log "template: cluster $TEMPLATE_CLUSTER, failed job $TEMPLATE_JOB (written by the server)"
python3 bench/api_seed.py clusters "$DB" "$TEMPLATE_CLUSTER" "$NCLUSTERS" "$WORK/clusters.txt" >&2
head -n "$HOT" "$WORK/clusters.txt" >"$WORK/hot.txt"
# The run's "now" for the seed: recent jobs fall in the last 7 days of the run.
NOW="$(date +%s)"
}

seed_jobs() { # TOTAL
    local t0=$EPOCHREALTIME
    python3 bench/api_seed.py jobs "$DB" "$TEMPLATE_JOB" "$WORK/clusters.txt" "$HOT" "$RECENT" "$1" "$NOW" >&2
    log "seeded $1 jobs in $(elapsed "$t0" "$EPOCHREALTIME") s; store $(du -b "$DB" | cut -f1) bytes"
}

# bare_start: polarbackup-bench-bare answering the saved body; sets BARE_ENDPOINT, BARE_PID.
bare_start() {
"$WORK/bin/polarbackup-bench-bare" --body "$WORK/body.json" >"$WORK/bare.out" 2>"$WORK/bare.log" &
BARE_PID=$!
PIDS+=("$BARE_PID")
for _ in $(seq 1 100); do grep -q Listening "$WORK/bare.out" 2>/dev/null && break; sleep 0.1; done
BARE_ENDPOINT="$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["Listening"])' "$WORK/bare.out")"
}

# ------------------------------------------------------------------------------------------
# A. DescribeBackupTasks at each size.
api_part() {
make_store
local size out perf_pid="" mem cpu0 fsync
for size in $SIZES; do
    seed_jobs "$size"
    serve "api-$size" "$DATA" -- --workers 0
    pb_env "$PB_ENDPOINT" "$KEY_ID" "$KEY_SECRET" "" python3 bench/api_check.py "$DB" "$TEMPLATE_JOB" 7 \
        "$(head -1 "$WORK/hot.txt")" "$(tail -1 "$WORK/hot.txt")" "$(tail -1 "$WORK/clusters.txt")" >&2
    if [ "$PERF" = 1 ] && [ "$size" = "${SIZES##* }" ]; then
        # DWARF call graphs: the release build keeps its unwind tables, not frame pointers.
        perf record --call-graph dwarf,16384 -F 499 -p "$PB_PID" -o "$WORK/perf.data" -- sleep "$((WARMUP + API_SECONDS))" \
            >/dev/null 2>&1 &
        perf_pid=$!
    fi
    fsync="$(fsync_ms)"
    cpu0="$(proc_cpu "$PB_PID")"
    out="$(POLARBACKUP_BENCH_KEY_SECRET="$KEY_SECRET" loadgen --target "$PB_ENDPOINT" --key-id "$KEY_ID" \
        --vary "DBClusterId=$WORK/hot.txt" --save-body "$WORK/body.json")" \
        || { echo "$out" >&2; tail -20 "$WORK/api-$size.log" >&2; die "load generator failed at $size jobs"; }
    mem="$(proc_mem "$PB_PID")"
    api_row api serve "$size" "$out" "rss_kib=${mem% *},hwm_kib=${mem#* },cpu_us_per_request=$(cpu_per_request "$cpu0" "$(proc_cpu "$PB_PID")" "$out"),fsync_ms=$fsync"
    if [ -n "$perf_pid" ]; then
        wait "$perf_pid" || true
        perf report -i "$WORK/perf.data" --stdio --children -g none --percent-limit 1 2>/dev/null \
            | grep -v '^$' | head -400 >"$RESULTS_DIR/$STAMP-api.perf.txt" || true
        log "profile: $RESULTS_DIR/$STAMP-api.perf.txt"
    fi
    if [ "$LAT_CONNECTIONS" != 0 ]; then
        out="$(CONNS="$LAT_CONNECTIONS" POLARBACKUP_BENCH_KEY_SECRET="$KEY_SECRET" loadgen --target "$PB_ENDPOINT" \
            --key-id "$KEY_ID" --vary "DBClusterId=$WORK/hot.txt")" \
            || { echo "$out" >&2; die "load generator failed at $size jobs, $LAT_CONNECTIONS connection(s)"; }
        api_row api "serve-c$LAT_CONNECTIONS" "$size" "$out"
    fi
    stop_serve
    # The limit right after, at the machine's load of the moment: the ratio compares like
    # with like even when other work comes and goes.
    bare_start
    cpu0="$(proc_cpu "$BARE_PID")"
    out="$(POLARBACKUP_BENCH_KEY_SECRET="$KEY_SECRET" loadgen --target "$BARE_ENDPOINT" --key-id "$KEY_ID" \
        --vary "DBClusterId=$WORK/hot.txt")" || { echo "$out" >&2; die "load generator failed on bare"; }
    api_row bare hyper-after "$size" "$out" "cpu_us_per_request=$(cpu_per_request "$cpu0" "$(proc_cpu "$BARE_PID")" "$out")"
    stop_pid "$BARE_PID" TERM "bare server"
done
# Every stored job of a few clusters (history included), read back with a history long enough.
serve api-readback "$DATA" POLARBACKUP_JOB_HISTORY_DAYS=3650 -- --workers 0
pb_env "$PB_ENDPOINT" "$KEY_ID" "$KEY_SECRET" "" python3 bench/api_check.py "$DB" "$TEMPLATE_JOB" 3650 \
    "$(head -1 "$WORK/hot.txt")" "$(sed -n "$((HOT + 1))p" "$WORK/clusters.txt")" "$(tail -1 "$WORK/clusters.txt")" >&2
stop_serve
}
[[ $PARTS == *,api,* ]] && api_part

# ------------------------------------------------------------------------------------------
# B. The limit: hyper answering the same body, no work.
bare_part() {
local out endpoint cpu0
bare_start
endpoint="$BARE_ENDPOINT"
cpu0="$(proc_cpu "$BARE_PID")"
out="$(POLARBACKUP_BENCH_KEY_SECRET="$KEY_SECRET" loadgen --target "$endpoint" --key-id "$KEY_ID" \
    --vary "DBClusterId=$WORK/hot.txt")" || { echo "$out" >&2; die "load generator failed on bare"; }
api_row bare hyper "-" "$out" "cpu_us_per_request=$(cpu_per_request "$cpu0" "$(proc_cpu "$BARE_PID")" "$out")"
if [ "$LAT_CONNECTIONS" != 0 ]; then
    out="$(CONNS="$LAT_CONNECTIONS" POLARBACKUP_BENCH_KEY_SECRET="$KEY_SECRET" loadgen --target "$endpoint" \
        --key-id "$KEY_ID" --vary "DBClusterId=$WORK/hot.txt")" || { echo "$out" >&2; die "load generator failed on bare"; }
    api_row bare "hyper-c$LAT_CONNECTIONS" "-" "$out"
fi
stop_pid "$BARE_PID" TERM "bare server"
}
[[ $PARTS == *,bare,* ]] && bare_part

# ------------------------------------------------------------------------------------------
# C. moto_server, RDS DescribeDBSnapshots.
moto_part() {
local port out n
port="$(free_port)"
moto_server -H 127.0.0.1 -p "$port" >"$WORK/moto.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 1 100); do
    python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' "$port" 2>/dev/null && break
    sleep 0.2
done
n="$(python3 bench/api_moto_seed.py "http://127.0.0.1:$port" "$HOT" "$RECENT" "$WORK/instances.txt")"
log "moto: $HOT instances, $n snapshots each"
# moto checks no signature; the secret only makes the generator's SigV4 work real.
out="$(POLARBACKUP_BENCH_KEY_SECRET=moto-checks-no-signature loadgen --target "127.0.0.1:$port" \
    --protocol sigv4 --action DescribeDBSnapshots --key-id AKIDBENCHMOTO \
    --vary "DBInstanceIdentifier=$WORK/instances.txt")" || { echo "$out" >&2; die "load generator failed on moto"; }
api_row moto "moto-$(python3 -c 'import moto; print(moto.__version__)')" "-" "$out" "snapshots_per_instance=$n"
stop_pid "${PIDS[-1]}" INT "moto_server"
}
[[ $PARTS == *,moto,* ]] && moto_part

# ------------------------------------------------------------------------------------------
# D. serve's memory with the largest store: idle, then while two real backups run.
memory_part() {
local i k port ports=() variant n=0 pairs
for i in 1 2; do
    port="$(free_port)"
    pg_start "src$i" "$port" "shared_buffers = 64MB\n"
    as_pg "$PGBIN/pgbench" -i -q -s "$MEM_SCALE" -h "$WORK/sock" -p "$port" -U postgres postgres 2>"$WORK/pgbench$i.log" \
        || { cat "$WORK/pgbench$i.log" >&2; die "pgbench -i failed"; }
    ports+=("$port")
done
# One pair of clusters (one per database) for every 3 variants: line k of mem-pairs.txt.
pairs=$(( ($(wc -w <<<"$MEM_VARIANTS") + 2) / 3 ))
for k in $(seq 1 "$pairs"); do
    for port in "${ports[@]}"; do
        admin cluster create --account "$ACCOUNT" --region cn-hangzhou --engine postgresql \
            --host 127.0.0.1 --port "$port" --user postgres --database postgres | json_field DBClusterId
    done | paste -sd' ' >>"$WORK/mem-pairs.txt"
done
for variant in $MEM_VARIANTS; do
    mem_run "$variant" "$(sed -n "$((n / 3 + 1))p" "$WORK/mem-pairs.txt")"
    n=$((n + 1))
done
}

# mem_run VARIANT "CLUSTER CLUSTER": serve idle, then two backups at once; VARIANT is "default",
# VAR=VALUE (an environment setting for serve, such as MALLOC_ARENA_MAX=2) or bin:DIR (serve
# from DIR/polarbackup, copied first).
mem_run() {
local variant="$1" clusters="$2" envs=() cluster mem peak=0 pids=() r i tag bin="$BIN"
case "$variant" in
    default) ;;
    bin:*) bin="$WORK/bin/polarbackup-mem-${variant//[^A-Za-z0-9]/-}" ;;
    *) envs=("$variant") ;;
esac
tag="${variant//[^A-Za-z0-9]/-}"
# A build named again is the copy made for its first variant.
[ -e "$bin" ] || cp "${variant#bin:}/polarbackup" "$bin"
BIN="$bin" serve "mem-$tag" "$DATA" "${envs[@]}" -- --workers 2
sleep 5
mem="$(proc_mem "$PB_PID")"
row memory "idle-$tag" "${SIZES##* }" "$((${mem% *} / 1024))" "MiB" "rss_kib=${mem% *},hwm_kib=${mem#* },clusters=$(wc -l <"$WORK/clusters.txt"),workers=2,scheduler=off,log_backup=off,env=$variant"
for cluster in $clusters; do
    pb_env "$PB_ENDPOINT" "$ACC_KEY_ID" "$ACC_KEY_SECRET" "$cluster" \
        python3 bench/pb_client.py --interval 0.2 >"$WORK/mem-$cluster.json" &
    pids+=("$!")
done
while kill -0 "${pids[0]}" 2>/dev/null || kill -0 "${pids[1]}" 2>/dev/null; do
    mem="$(proc_mem "$PB_PID")"
    [ "${mem% *}" -gt "$peak" ] && peak="${mem% *}"
    sleep 0.1
done
for i in 0 1; do wait "${pids[$i]}" || die "backup $i failed: $(cat "$WORK"/mem-*.json)"; done
for cluster in $clusters; do
    r="$(python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); assert o["status"]=="Finished", o; print(o["wall"])' "$WORK/mem-$cluster.json")" \
        || die "backup of $cluster did not finish"
    log "backup of $cluster finished in $r s"
done
mem="$(proc_mem "$PB_PID")"
# VmHWM is the kernel's own peak (the 0.1 s samples may miss one); idle was far below it.
[ "${mem#* }" -gt "$peak" ] && peak="${mem#* }"
row memory "backups-$tag" "${SIZES##* }" "$((peak / 1024))" "MiB" "peak_kib=$peak,rss_after_kib=${mem% *},hwm_kib=${mem#* },pgbench_scale=$MEM_SCALE,backups=2,env=$variant"
stop_serve
}
[[ $PARTS == *,memory,* ]] && memory_part

# ------------------------------------------------------------------------------------------
# F. One /metrics scrape of the largest store: every Running cluster's backups, jobs, WAL and
# recovery window are read from the store at each scrape (issue 14's metrics). Its own serve,
# so the exposition's memory never counts in the memory part.
metrics_part() {
local port out
port="$(free_port)"
serve metrics "$DATA" -- --workers 0 --metrics-listen "127.0.0.1:$port"
out="$(python3 - "http://127.0.0.1:$port/metrics" "${BENCH_METRICS_SCRAPES:-5}" <<'PY'
import statistics, sys, time, urllib.request
url, n = sys.argv[1], int(sys.argv[2])
times, body = [], b""
for _ in range(n):
    t0 = time.perf_counter()
    body = urllib.request.urlopen(url, timeout=600).read()
    times.append((time.perf_counter() - t0) * 1e3)
lines = body.decode().splitlines()
series = sum(1 for l in lines if l and not l.startswith("#"))
clusters = len({l.split('cluster="', 1)[1].split('"', 1)[0] for l in lines if 'cluster="' in l})
assert clusters > 0, "no cluster in the scrape"
print("%.1f median_ms=%.1f,min_ms=%.1f,max_ms=%.1f,bytes=%d,series=%d,clusters=%d,scrapes=%d"
      % (statistics.median(times), statistics.median(times), min(times), max(times), len(body), series, clusters, n))
PY
)" || die "scraping /metrics failed"
mem="$(proc_mem "$PB_PID")"
row metrics scrape "${SIZES##* }" "${out%% *}" ms "${out#* },rss_after_kib=${mem% *},hwm_kib=${mem#* }"
stop_serve
}
[[ $PARTS == *,metrics,* ]] && metrics_part

# ------------------------------------------------------------------------------------------
# E. A/B: two builds alternated on copies of one store of the largest size.
ab_part() {
local size="${SIZES##* }" r v order out cpu0 fsync bin
[ -n "$AB_BIN_DIR" ] || die "the ab part needs BENCH_AB_BIN_DIR (build B)"
cp "$AB_BIN_DIR/polarbackup" "$WORK/bin/polarbackup-b"
echo "# ab: A = the binaries above, B = $AB_BIN_DIR/polarbackup" >>"$TSV"
make_store
seed_jobs "$size"
# A copy each: a newer build may migrate its copy, which an older one would then refuse.
cp -a "$DATA" "$WORK/data-A"
cp -a "$DATA" "$WORK/data-B"
for r in $(seq 1 "$AB_ROUNDS"); do
    order="A B"
    [ $((r % 2)) = 0 ] && order="B A"
    for v in $order; do
        bin="$BIN"
        [ "$v" = B ] && bin="$WORK/bin/polarbackup-b"
        BIN="$bin" serve "ab-$v-$r" "$WORK/data-$v" -- --workers 0
        fsync="$(fsync_ms)"
        cpu0="$(proc_cpu "$PB_PID")"
        out="$(POLARBACKUP_BENCH_KEY_SECRET="$KEY_SECRET" loadgen --target "$PB_ENDPOINT" --key-id "$KEY_ID" \
            --vary "DBClusterId=$WORK/hot.txt")" \
            || { echo "$out" >&2; tail -20 "$WORK/ab-$v-$r.log" >&2; die "load generator failed on $v"; }
        api_row ab "$v" "$size" "$out" "round=$r,cpu_us_per_request=$(cpu_per_request "$cpu0" "$(proc_cpu "$PB_PID")" "$out"),fsync_ms=$fsync"
        stop_serve
    done
done
}
[[ $PARTS == *,ab,* ]] && ab_part

# ------------------------------------------------------------------------------------------
log "results: $TSV"
python3 - "$TSV" "$SIZES" >"$RESULTS_DIR/$STAMP-api.summary.md" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if not l.startswith("#")][1:]
sizes = sys.argv[2].split()
def details(detail):
    return dict(f.split("=", 1) for f in detail.split(",") if "=" in f)
def get(part, variant=None, jobs=None):
    for p, v, j, value, unit, detail, load in rows:
        if p == part and (variant is None or v == variant) and (jobs is None or j == jobs):
            return float(value), details(detail), load
    return None
def fmt(x, spec="%.2f"):
    return spec % x if x is not None else "n/a"
print("| measure | requests/s | p50 ms | p99 ms | load1 |")
print("|---|---|---|---|---|")
def line(name, r):
    if r:
        print("| %s, %s conn. | %.0f | %s | %s | %s |" % (name, r[1]["connections"], r[0], r[1]["p50_ms"], r[1]["p99_ms"], r[2]))
lat = [v for p, v, j, *_ in rows if p == "api" and v.startswith("serve-c")]
for s in sizes:
    line("DescribeBackupTasks, %s jobs" % s, get("api", "serve", s))
    if lat:
        line("DescribeBackupTasks, %s jobs" % s, get("api", lat[0], s))
for s in sizes:
    line("bare hyper right after the %s-job run" % s, get("bare", "hyper-after", s))
line("bare hyper, same body", get("bare", "hyper"))
for p, v, *_ in rows:
    if p == "bare" and v not in ("hyper", "hyper-after"):
        line("bare hyper, same body", get("bare", v))
line("moto_server DescribeDBSnapshots", get("moto"))
print()
for s in sizes:
    r = get("api", "serve", s)
    if r and "fsync_ms" in r[1]:
        f = float(r[1]["fsync_ms"])
        print("- %s jobs: serve CPU %s us/request; fsync median %.2f ms, so at most %.0f requests/s on %s closed-loop connections (one durable nonce commit each); %s %% of the vCPUs' time stolen by the host meanwhile"
              % (s, r[1].get("cpu_us_per_request", "n/a"), f, float(r[1]["connections"]) / f * 1e3 if f else 0, r[1]["connections"], r[1].get("steal_pct", "n/a")))
    b = get("bare", "hyper-after", s)
    if b and "cpu_us_per_request" in b[1]:
        # The generator is one thread: where it is the limit, requests/s alone flatters the API.
        print("- bare hyper right after the %s-job run: its CPU %s us/request" % (s, b[1]["cpu_us_per_request"]))
big, small, bare, moto = get("api", "serve", sizes[-1]), get("api", "serve", sizes[0]), get("bare", "hyper"), get("moto")
print()
print("| goal | measured | met |")
print("|---|---|---|")
def goal(name, value, ok, spec="%.2f"):
    print("| %s | %s | %s |" % (name, fmt(value, spec), "n/a" if value is None else ("yes" if ok(value) else "**no**")))
near = get("bare", "hyper-after", sizes[-1])
goal("requests/s at %s jobs >= 0.5x bare hyper (measured right after)" % sizes[-1], big[0] / near[0] if big and near else None, lambda x: x >= 0.5)
goal("requests/s at %s jobs >= 0.5x bare hyper (bare part)" % sizes[-1], big[0] / bare[0] if big and bare else None, lambda x: x >= 0.5)
goal("p99 at %s jobs < 5 ms" % sizes[-1], float(big[1]["p99_ms"]) if big else None, lambda x: x < 5)
goal("p99(%s) <= 1.5x p99(%s)" % (sizes[-1], sizes[0]), float(big[1]["p99_ms"]) / float(small[1]["p99_ms"]) if big and small else None, lambda x: x <= 1.5)
if lat:
    b1, s1 = get("api", lat[0], sizes[-1]), get("api", lat[0], sizes[0])
    goal("p99 at %s jobs < 5 ms (%s)" % (sizes[-1], lat[0]), float(b1[1]["p99_ms"]) if b1 else None, lambda x: x < 5)
    goal("p99(%s) <= 1.5x p99(%s) (%s)" % (sizes[-1], sizes[0], lat[0]), float(b1[1]["p99_ms"]) / float(s1[1]["p99_ms"]) if b1 and s1 else None, lambda x: x <= 1.5)
goal("requests/s >= 20x moto", big[0] / moto[0] if big and moto else None, lambda x: x >= 20, "%.1f")
ab = [(v, float(value), dict(f.split("=", 1) for f in detail.split(",") if "=" in f)) for p, v, j, value, unit, detail, load in rows if p == "ab"]
if ab:
    print()
    print("| A/B round | A requests/s | B requests/s | B/A | A / B p99 ms | A / B CPU us per request | A / B steal % | fsync ms (A, B) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in sorted({d["round"] for _, _, d in ab}, key=int):
        a = [(x, d) for v, x, d in ab if v == "A" and d["round"] == r]
        b = [(x, d) for v, x, d in ab if v == "B" and d["round"] == r]
        if a and b:
            print("| %s | %.0f | %.0f | %.2f | %s / %s | %s / %s | %s / %s | %s, %s |" % (r, a[0][0], b[0][0], b[0][0] / a[0][0], a[0][1]["p99_ms"], b[0][1]["p99_ms"], a[0][1]["cpu_us_per_request"], b[0][1]["cpu_us_per_request"], a[0][1].get("steal_pct", "n/a"), b[0][1].get("steal_pct", "n/a"), a[0][1]["fsync_ms"], b[0][1]["fsync_ms"]))
m = get("metrics", "scrape")
if m:
    print()
    print("- /metrics scrape, %s clusters, %s jobs: median %.0f ms (min %s, max %s), %s bytes, %s series; serve RSS after %s KiB"
          % (m[1]["clusters"], sizes[-1], m[0], m[1]["min_ms"], m[1]["max_ms"], m[1]["bytes"], m[1]["series"], m[1]["rss_after_kib"]))
for p, variant, j, value, unit, detail, load in rows:
    if p == "memory":
        env = details(detail)["env"]
        name = ("serve RSS idle, %s jobs" if variant.startswith("idle") else "serve peak RSS, two backups, %s jobs") % sizes[-1]
        goal("%s (%s) < 200 MiB" % (name, env), float(value), lambda x: x < 200, "%.0f MiB")
PY
cat "$RESULTS_DIR/$STAMP-api.summary.md"
