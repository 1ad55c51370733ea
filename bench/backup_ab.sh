#!/usr/bin/env bash
# A/B of polarbackup's full backup (verification included) on data kept by an earlier run of
# bench/backup_restore.sh with BENCH_KEEP=1: alternating rounds of two binaries, one server each.
#
#   sudo AB_WORK=/var/tmp/polarbackup-bench.XXXXXX AB_A=path/to/a AB_B=path/to/b \
#       flock <lock> bash bench/backup_ab.sh
#
# Settings (environment):
#   AB_WORK        the kept work directory (its pgdata is started, then stopped again)
#   AB_A, AB_B     the two polarbackup binaries (copied into AB_WORK first)
#   AB_ROUNDS=8    rounds; each runs A then B (odd rounds) or B then A (even rounds)
#   AB_TIMELINE=0  1: also sample the CPU of every server thread and PostgreSQL process every
#                  AB_EVERY=0.025 s during each backup (bench/cpu_timeline.py), written next
#                  to the results as <stamp>-<label>-<round>.timeline.tsv
#   AB_POLL=0.05   DescribeBackupTasks polling interval, seconds
#   AB_COLD=0      1: drop the page cache before every backup (PostgreSQL then reads its files
#                  from disk, on the cores the backup needs)
#   AB_RESULTS_DIR=bench/results   where <stamp>.ab.tsv goes
# The servers run with --log-backup off --scheduler off --scrub-days 0: each round registers a
# cluster, and with log backup on every one of them would keep a WAL archiver (a walsender) busy
# in the rounds after it.
# Prints one row per backup and the medians per binary.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT="$PWD"
WORK="${AB_WORK:?AB_WORK: a work directory kept by bench/backup_restore.sh}"
ROUNDS="${AB_ROUNDS:-8}"
TIMELINE="${AB_TIMELINE:-0}"
EVERY="${AB_EVERY:-0.025}"
POLL="${AB_POLL:-0.05}"
COLD="${AB_COLD:-0}"
PGBIN=/usr/lib/postgresql/15/bin
BENCH_TAG=ab
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
[ "$(id -u)" = 0 ] || die "run as root (PostgreSQL runs as user postgres)"
[ -d "$WORK/pgdata" ] || die "$WORK/pgdata not found"

AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups --
    env HOME="$WORK/home" PATH="$PGBIN:/usr/local/bin:/usr/bin:/bin" LC_ALL=C.UTF-8)
PIDS=()
trap 'for p in "${PIDS[@]}"; do stop_pid "$p" INT "pid $p"; done' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PGDATA="$WORK/pgdata"
PORT="$(awk -F' = ' '/^port = /{print $2}' "$PGDATA/postgresql.conf" | tail -1)"
as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$WORK/pg.log" -w -t 120 start >/dev/null
PG_PID="$(head -1 "$PGDATA/postmaster.pid")"
PIDS+=("$PG_PID")
pg_cpu() { sed 's/.*) //' "/proc/$PG_PID/stat" | awk -v t="$CLK_TCK" '{ printf "%.2f", ($12 + $13 + $14 + $15) / t }'; }

declare -A ENDPOINT SPID KEYID SECRET ACCOUNT
SERVE_AS=("${AS_PG[@]}")
for label in A B; do
    var="AB_$label"
    mkdir -p "$WORK/ab-$label"
    cp "${!var}" "$WORK/ab-$label/polarbackup"
    chown -R postgres:postgres "$WORK/ab-$label"
    bin="$WORK/ab-$label/polarbackup"
    data="$WORK/ab-$label/data"
    BIN="$bin"
    serve "ab-$label/serve" "$data" POLARBACKUP_LOG="${AB_LOG:-info}" -- \
        --log-format json --scrub-days 0
    SPID[$label]="$PB_PID"
    ENDPOINT[$label]="$PB_ENDPOINT"
    ACCOUNT[$label]="$(as_pg env POLARBACKUP_DATA_DIR="$data" "$bin" admin account create --name ab | json_field AccountId)"
    key="$(as_pg env POLARBACKUP_DATA_DIR="$data" "$bin" admin key create --account "${ACCOUNT[$label]}")"
    KEYID[$label]="$(json_field AccessKeyId <<<"$key")"
    SECRET[$label]="$(json_field AccessKeySecret <<<"$key")"
    log "$label: ${!var} on ${ENDPOINT[$label]} (pid ${SPID[$label]})"
done

RESULTS_DIR="${AB_RESULTS_DIR:-$ROOT/bench/results}"
mkdir -p "$RESULTS_DIR"
STAMP="$(date +%Y-%m-%d-%H%M)"
TSV="$RESULTS_DIR/$STAMP.ab.tsv"
printf 'label\tround\twall_s\tserver_job_s\tserver_cpu_s\tpg_cpu_s\tload1\tfirst_seen\n' >"$TSV"

backup() { # label round
    local label="$1" round="$2" bin="$WORK/ab-$1/polarbackup" data="$WORK/ab-$1/data" cluster out c0 c1 p0 p1 l tl=""
    cluster="$(as_pg env POLARBACKUP_DATA_DIR="$data" "$bin" admin cluster create \
        --account "${ACCOUNT[$label]}" --region cn-hangzhou --engine postgresql --host 127.0.0.1 \
        --port "$PORT" --user postgres --database postgres --description "ab $round" | json_field DBClusterId)"
    sync
    [ "$COLD" = 1 ] && echo 3 >/proc/sys/vm/drop_caches
    sleep 1
    l="$(cut -d' ' -f1 /proc/loadavg)"
    if [ "$TIMELINE" = 1 ]; then
        tl="$RESULTS_DIR/$STAMP-$label-$round.timeline.tsv"
        python3 bench/cpu_timeline.py "${SPID[$label]}" "$PG_PID" "$EVERY" "$tl" &
        TL_PID=$!
        sleep 0.2
    fi
    c0="$(proc_cpu "${SPID[$label]}")"; p0="$(pg_cpu)"
    out="$(env POLARBACKUP_ENDPOINT="${ENDPOINT[$label]}" POLARBACKUP_ACCESS_KEY_ID="${KEYID[$label]}" \
        POLARBACKUP_ACCESS_KEY_SECRET="${SECRET[$label]}" POLARBACKUP_CLUSTER="$cluster" \
        python3 bench/pb_client.py --interval "$POLL")" || { echo "$out" >&2; die "backup $label failed"; }
    c1="$(proc_cpu "${SPID[$label]}")"; p1="$(pg_cpu)"
    if [ -n "$tl" ]; then
        sleep 0.2
        touch "$tl.stop"
        wait "$TL_PID" || true
        rm -f "$tl.stop"
    fi
    python3 - "$out" "$WORK/ab-$label/serve.log" "$label" "$round" \
        "$(awk -v a="$c0" -v b="$c1" 'BEGIN{printf "%.2f", b-a}')" \
        "$(awk -v a="$p0" -v b="$p1" 'BEGIN{printf "%.2f", b-a}')" "$l" >>"$TSV" <<'PY'
import json, sys
sys.path.insert(0, "bench")
from job_times import job_times
o = json.loads(sys.argv[1])
start, end = job_times(sys.argv[2], o["job"])
job_s = "%.3f" % (end - start) if start and end else ""
fs = ",".join(["start_epoch=%.3f" % o["start_epoch"]] + ["%s=%s" % kv for kv in o["first_seen"].items()])
print("\t".join([sys.argv[3], sys.argv[4], "%.3f" % o["wall"], job_s, sys.argv[5], sys.argv[6], sys.argv[7], fs]))
PY
    log "$(tail -1 "$TSV")"
    # Only the times are kept: ~300 MiB per backup would fill the disk over many rounds.
    rm -rf "$data/repo/backups/$(json_field job <<<"$out")"
}

for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then order="A B"; else order="B A"; fi
    for label in $order; do backup "$label" "$round"; done
done

python3 - "$TSV" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
print("| build | n | wall median s | wall min s | server job median s | server CPU median s | PostgreSQL CPU median s |")
print("|---|---|---|---|---|---|---|")
for label in ("A", "B"):
    r = [x for x in rows if x["label"] == label]
    med = lambda k: statistics.median(float(x[k]) for x in r if x[k])
    print("| %s | %d | %.2f | %.2f | %.2f | %.2f | %.2f |" % (label, len(r), med("wall_s"),
          min(float(x["wall_s"]) for x in r), med("server_job_s"), med("server_cpu_s"), med("pg_cpu_s")))
PY
[ "$TIMELINE" = 1 ] && python3 bench/cpu_timeline.py --summary "$TSV"
log "rows: $TSV"
