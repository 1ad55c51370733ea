#!/usr/bin/env bash
# Incremental backup benchmark: polarbackup full + incremental vs pgBackRest full + incr, on
# PostgreSQL 15 (the LSN block diff) and 18 (native BASE_BACKUP INCREMENTAL), in one run.
#
#   sudo bash bench/incremental.sh            # from the repository root, as root, Debian 12
#
# What it does (see BENCHMARKS.md, "Incremental backups", for the results and how to read them):
#   1. cargo build --release -p polarbackup (or takes BENCH_BIN); installs Debian's pgbackrest if
#      missing. Starts one `polarbackup serve` (JSON log), as user postgres.
#   2. For each PostgreSQL version (BENCH_VERSIONS, default "15 18"):
#      a. a throwaway cluster (initdb --data-checksums, as postgres, loopback, WAL archived
#         through pgBackRest where pgBackRest supports the version; summarize_wal = on from 17),
#         loaded with pgbench -i -s BENCH_SCALE (default 100, about 1.5 GiB);
#      b. polarbackup full: `polarbackup admin backup --type full --wait` (the server's worker
#         runs it); pgBackRest --type=full (zst level 1, process-max=2, start-fast, as in
#         bench/backup_restore.sh);
#      c. the change: pgbench -n -t N, N = BENCH_CHANGE_TX, or BENCH_CHANGE_PCT (default 1) % of pgbench_accounts'
#         rows; then how much it touched: distinct accounts updated, the heap pages they were on,
#         and (17+) the distinct relation blocks in PostgreSQL's WAL summaries between the two
#         backups;
#      d. polarbackup incremental (`admin backup --type incremental --wait`, checked to be built
#         on the full set) and pgBackRest --type=incr;
#      e. the same number of rows changed once more, clustered (one UPDATE of consecutive aids),
#         and a second incremental of each tool on the first (to show what spreading costs);
#      f. restores the last polarbackup incremental (`polarbackup restore --backup-id`, which
#         rebuilds the chain full <- incr <- incr), runs pg_verifybackup on it, starts PostgreSQL
#         on it and compares row counts and sum(abalance) with the source.
#   3. Writes raw rows to bench/results/<date>-incr.tsv and a table with the incremental/full
#      ratios to <date>-incr.summary.md.
#   Per backup: wall time (command start to end; for polarbackup also the server's job time),
#   bytes transferred and stored. polarbackup: transferred = the set's data archives' raw bytes
#   (manifest.json, without pg_wal.tar), stored = every object of the set (compressed), and
#   stored without WAL = the data archives' chunks (pgBackRest archives WAL apart); for the
#   LSN method the server still streams the whole database, the diff runs in polarbackup (the
#   row notes the relation blocks it saw and kept). pgBackRest: transferred = `info` delta (the
#   files it copied), stored = the repository delta.
#   Everything lives in one work directory removed on exit (trap); servers are stopped by PID.
#
# Settings (environment):
#   BENCH_SCALE=100           pgbench scale (15 MiB per unit)
#   BENCH_CHANGE_PCT=1        pgbench transactions, as a percentage of pgbench_accounts' rows
#   BENCH_CHANGE_TX=          pgbench transactions, as a number (instead of BENCH_CHANGE_PCT);
#                             1000 at scale 100 change about 1 % of the database's blocks
#   BENCH_VERSIONS="15 18"    PostgreSQL majors (15: /usr/lib/postgresql/15/bin; others:
#                             /var/cache/polarbackup/pg/<major>/bin, scripts/install-deps.sh --old-postgres)
#   BENCH_BIN=                a polarbackup binary to use instead of building one
#   BENCH_WORK_PARENT=/var/tmp  where the work directory goes
#   BENCH_RESULTS_DIR=bench/results
#   BENCH_KEEP=0              1: keep the work directory (servers are still stopped)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT="$PWD"
SCALE="${BENCH_SCALE:-100}"
CHANGE_PCT="${BENCH_CHANGE_PCT:-1}"
CHANGE_TX="${BENCH_CHANGE_TX:-}"
[ -z "$CHANGE_TX" ] || [[ "$CHANGE_TX" =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_CHANGE_TX must be a positive number" >&2; exit 2; }
VERSIONS="${BENCH_VERSIONS:-15 18}"
KEEP="${BENCH_KEEP:-0}"
PSQL_BIN=/usr/lib/postgresql/15/bin/psql # the 18 build has no psql; SQL is the same

BENCH_TAG=bench-incr
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

[ "$(id -u)" = 0 ] || die "run as root (it installs packages and runs PostgreSQL as user postgres)"
[ -x "$PSQL_BIN" ] || die "$PSQL_BIN not found (apt-get install postgresql-15)"
pg_bin_dir() { if [ "$1" = 15 ]; then echo /usr/lib/postgresql/15/bin; else echo "/var/cache/polarbackup/pg/$1/bin"; fi; }
for v in $VERSIONS; do
    [ -x "$(pg_bin_dir "$v")/initdb" ] || die "$(pg_bin_dir "$v")/initdb not found (scripts/install-deps.sh --old-postgres)"
done

cleanup_on_exit
PB_PID=""
PG_PID=""
PG2_PID=""

# ------------------------------------------------------------------------------------------
# 1. dependencies, binary, server
ensure_pgbackrest
for tool in setpriv du python3; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is missing"
done
if [ -n "${BENCH_BIN:-}" ]; then
    SRC_BIN="$BENCH_BIN"
else
    log "cargo build --release -p polarbackup"
    cargo build --release --quiet -p polarbackup
    SRC_BIN="${CARGO_TARGET_DIR:-target}/release/polarbackup"
fi
COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
DIRTY="$(git status --porcelain --untracked-files=no -- crates Cargo.toml Cargo.lock 2>/dev/null | wc -l)"

WORK="$(mktemp -d "${BENCH_WORK_PARENT:-/var/tmp}/polarbackup-bench-incr.XXXXXX")"
chmod 755 "$WORK"
mkdir -p "$WORK/bin" "$WORK/home" "$WORK/sock" "$WORK/sock2" "$WORK/pb-data"
cp "$SRC_BIN" "$WORK/bin/polarbackup"
chown -R postgres:postgres "$WORK"
BIN="$WORK/bin/polarbackup"
log "work directory $WORK (commit $COMMIT, $DIRTY modified tracked source files)"

AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups --
    env HOME="$WORK/home" PATH="/usr/local/bin:/usr/bin:/bin" LC_ALL=C.UTF-8)
load1() { cut -d' ' -f1 /proc/loadavg; }
PB=(as_pg env POLARBACKUP_DATA_DIR="$WORK/pb-data" "$BIN")

log "starting polarbackup serve"
SERVE_AS=("${AS_PG[@]}")
serve pb-serve "$WORK/pb-data" POLARBACKUP_LOG=info -- --log-format json
PB_ACCOUNT="$("${PB[@]}" admin account create --name bench | json_field AccountId)"

# ------------------------------------------------------------------------------------------
# results
RESULTS_DIR="${BENCH_RESULTS_DIR:-$ROOT/bench/results}"
mkdir -p "$RESULTS_DIR"
STAMP="$(date +%Y-%m-%d-%H%M)-incr"
TSV="$RESULTS_DIR/$STAMP.tsv"
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
{
    echo "# polarbackup incremental benchmark, $(date -Iseconds)"
    echo "# commit=$COMMIT modified_source_files=$DIRTY"
    echo "# machine: nproc=$(nproc) mem_gib=$(awk '/MemTotal/{printf "%.1f", $2/1048576}' /proc/meminfo) cpu=\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')\" kernel=$(uname -r)"
    echo "# pgbackrest=$(pgbackrest version | awk '{print $2}') polarbackup=$("$BIN" --version | awk '{print $2}') scale=$SCALE change_pct=$CHANGE_PCT change_tx=${CHANGE_TX:-}"
    echo "# load average (1/5/15 min) at start: $LOAD_START"
    printf 'tool\tpg\tkind\twall_s\tjob_s\ttransferred_bytes\tstored_bytes\tstored_data_bytes\tload1\tnotes\n'
} >"$TSV"
row() { # tool pg kind wall job transferred stored stored_data load notes
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$TSV"
    log "$(printf '%-11s pg%-3s %-14s wall=%ss job=%ss transferred=%s stored=%s stored_data=%s load=%s %s' "$@")"
}
note() { echo "# $*" >>"$TSV"; log "$*"; }

# ------------------------------------------------------------------------------------------
# polarbackup: one backup through the admin command; sets PB_JOB and appends a row.
pb_backup() { # major cluster kind label
    local major="$1" cluster="$2" kind="$3" label="$4" t0 t1 out l facts
    l="$(load1)"
    t0=$EPOCHREALTIME
    out="$("${PB[@]}" admin backup --cluster "$cluster" --type "$kind" --wait 2>"$WORK/pb-admin.log")" \
        || { cat "$WORK/pb-admin.log" >&2; echo "$out" >&2; tail -20 "$WORK/pb-serve.log" >&2; die "polarbackup $kind backup failed"; }
    t1=$EPOCHREALTIME
    PB_JOB="$(json_field BackupJobId <<<"$out")"
    # The set's data archives (without pg_wal.tar) from its manifest, the server's own job time
    # and what the engine logged about the incremental.
    facts="$(python3 - "$out" "$WORK/pb-data/repo/backups/$PB_JOB/manifest.json" "$WORK/pb-serve.log" <<'PY'
import json, sys, datetime
o = json.loads(sys.argv[1])
m = json.load(open(sys.argv[2]))
job = o["BackupJobId"]
data = [a for a in m["archives"] if a["name"] != "pg_wal.tar"]
raw = sum(a["raw_size"] for a in data)
stored = m["totals"]["stored_bytes"]
stored_data = sum(c["stored_size"] for a in data for c in a["chunks"])
wal = sum(a["raw_size"] for a in m["archives"] if a["name"] == "pg_wal.tar")
def ts(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
start = end = None
notes = []
for line in open(sys.argv[3]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    f = e.get("fields", {})
    if str(f.get("job")) == job or str(f.get("backup")) == job:
        msg = f.get("message")
        if msg == "backup started":
            start = ts(e["timestamp"])
        elif msg == "backup finished":
            end = ts(e["timestamp"])
        elif msg == "relation blocks kept by the incremental diff":
            notes.append("diff_files=%s,diff_blocks_seen=%s,diff_blocks_kept=%s"
                         % (f.get("files"), f.get("blocks"), f.get("changed")))
        elif msg == "taking an incremental backup":
            notes.append("method=%s" % f.get("method"))
job_s = "%.2f" % (end - start) if start and end else "-"
notes.append("job=%s,parent=%s,status=%s,wal_raw=%d,set_raw=%d,set_size=%s"
             % (job, o.get("ParentBackupId"), o["Status"], wal, m["totals"]["raw_bytes"], o.get("BackupSize")))
notes.append("meta_incremental=%s,start_lsn=%s" % (m["meta"].get("incremental"), m["meta"].get("start_lsn")))
print(job_s, raw, stored, stored_data, ",".join(notes))
PY
)"
    read -r job_s raw stored stored_data notes <<<"$facts"
    PB_START_LSN="$(sed 's/.*start_lsn=//' <<<"$notes")"
    PB_PARENT="$(json_field ParentBackupId <<<"$out")"
    row polarbackup "$major" "$label" "$(elapsed "$t0" "$t1")" "$job_s" "$raw" "$stored" "$stored_data" "$l" "$notes"
}

# pgBackRest: one backup of type full or incr; appends a row.
pgbr_backup() { # major kind label
    local major="$1" kind="$2" label="$3" t0 t1 l facts
    l="$(load1)"
    t0=$EPOCHREALTIME
    as_pg "${PGBR[@]}" "--type=$kind" backup || die "pgbackrest $kind backup failed"
    t1=$EPOCHREALTIME
    facts="$(as_pg "${PGBR[@]}" --output=json info | python3 -c '
import json, sys
b = json.load(sys.stdin)[0]["backup"][-1]
i = b["info"]
print(i["delta"], i["repository"]["delta"],
      "label=%s,type=%s,db_size=%d,repo_size=%d" % (b["label"], b["type"], i["size"], i["repository"]["size"]))')"
    read -r transferred stored notes <<<"$facts"
    # Its WAL is archived apart (archive-push), so the backup's repository delta is all data.
    row pgbackrest "$major" "$label" "$(elapsed "$t0" "$t1")" - "$transferred" "$stored" "$stored" "$l" "$notes"
}

# summary_blocks MAJOR FROM_LSN TO_LSN WHAT: on 17+, the distinct relation blocks PostgreSQL's WAL
# summaries say were modified between two backups' start LSNs (what a native incremental sends).
summary_blocks() {
    local major="$1" from="$2" to="$3" what="$4" summary
    [ "$major" -ge 17 ] || return 0
    summary="$("${PSQL[@]}" -F ' ' -c "
        SELECT count(*), count(*) FILTER (WHERE c.relforknumber = 0)
        FROM (SELECT DISTINCT c.reltablespace, c.reldatabase, c.relfilenode, c.relforknumber, c.relblocknumber
              FROM pg_available_wal_summaries() s,
                   pg_wal_summary_contents(s.tli, s.start_lsn, s.end_lsn) c
              WHERE s.end_lsn > '$from' AND s.start_lsn < '$to' AND NOT c.is_limit_block) c")"
    note "PostgreSQL $major WAL summaries, $what ($from to $to): $(awk '{print $1}' <<<"$summary") distinct relation blocks modified ($(awk '{print $2}' <<<"$summary") in main forks), $(awk '{printf "%.0f", $1*8192}' <<<"$summary") bytes"
}

# ------------------------------------------------------------------------------------------
# 2. per version
run_version() {
    local major="$1" pgbin port port2 pgdata conf extra pgbr_ok=1 pgbr_why="" cluster full_job rows
    local n per_page pages0 counts restored verify accounts_pages t0 t1
    pgbin="$(pg_bin_dir "$major")"
    port="$(free_port)"; port2="$(free_port)"
    pgdata="$WORK/pg$major"
    PSQL=(as_pg "$PSQL_BIN" -X -q -At -v ON_ERROR_STOP=1 -h "$WORK/sock" -p "$port" -U postgres -d postgres)
    conf="$WORK/pgbackrest-$major.conf"
    pgbr_conf "$conf" "$WORK/pgbr-repo-$major" "pg$major" "$pgdata" "$port" process-max=2
    PGBR=(pgbackrest "--config=$conf" "--stanza=pg$major")

    log "=== PostgreSQL $major: initdb (port $port)"
    as_pg "$pgbin/initdb" -D "$pgdata" --data-checksums -U postgres -A trust --no-locale -E UTF8 >/dev/null
    extra=""
    [ "$major" -ge 17 ] && extra="summarize_wal = on"
    cat >>"$pgdata/postgresql.conf" <<EOF

# polarbackup incremental benchmark
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK/sock'
wal_level = replica
max_wal_senders = 10
archive_mode = on
archive_command = 'pgbackrest --config=$conf --stanza=pg$major archive-push %p'
shared_buffers = 512MB
max_wal_size = 4GB
checkpoint_timeout = 30min
$extra
EOF
    as_pg "$pgbin/pg_ctl" -D "$pgdata" -l "$WORK/pg$major.log" -w -t 120 start >/dev/null
    PG_PID="$(head -1 "$pgdata/postmaster.pid")"
    PIDS+=("$PG_PID")
    if ! pgbr_why="$(as_pg "${PGBR[@]}" stanza-create 2>&1)"; then
        pgbr_ok=0
        pgbr_why="$(tr '\n' ' ' <<<"$pgbr_why" | sed 's/  */ /g')"
        note "pgBackRest $(pgbackrest version | awk '{print $2}') on PostgreSQL $major: stanza-create refused: $pgbr_why"
        "${PSQL[@]}" -c "ALTER SYSTEM SET archive_command = 'true'" -c "SELECT pg_reload_conf()" >/dev/null
    fi

    log "loading: pgbench -i -s $SCALE"
    t0=$EPOCHREALTIME
    as_pg "$pgbin/pgbench" -i -q -s "$SCALE" -h "$WORK/sock" -p "$port" -U postgres postgres 2>"$WORK/pgbench-i.log" \
        || { cat "$WORK/pgbench-i.log" >&2; die "pgbench -i failed"; }
    "${PSQL[@]}" -c "VACUUM ANALYZE" -c "CHECKPOINT"
    log "load took $(elapsed "$t0" "$EPOCHREALTIME") s"
    rows="$("${PSQL[@]}" -c 'SELECT count(*) FROM pgbench_accounts')"
    per_page="$("${PSQL[@]}" -c "SELECT count(*) FROM pgbench_accounts WHERE ctid >= '(0,0)' AND ctid < '(1,0)'")"
    pages0="$("${PSQL[@]}" -c "SELECT pg_relation_size('pgbench_accounts') / 8192")"
    note "PostgreSQL $major ($("$pgbin/postgres" --version | awk '{print $3}')): database $("${PSQL[@]}" -c "SELECT pg_size_pretty(pg_database_size('postgres'))"), data directory without pg_wal $(du -sb --exclude=pg_wal "$pgdata" | cut -f1) bytes; pgbench_accounts $rows rows, $pages0 heap pages ($per_page rows a page)"

    cluster="$("${PB[@]}" admin cluster create --account "$PB_ACCOUNT" --region cn-hangzhou \
        --engine postgresql --host 127.0.0.1 --port "$port" --user postgres --database postgres \
        --description "bench pg$major" | json_field DBClusterId)"

    log "--- full backups"
    pb_backup "$major" "$cluster" full full
    full_job="$PB_JOB"
    local full_lsn="$PB_START_LSN"
    if [ "$pgbr_ok" = 1 ]; then pgbr_backup "$major" full full; fi

    n="${CHANGE_TX:-$(( rows * CHANGE_PCT / 100 ))}"
    log "--- the change: pgbench -n -t $n"
    t0=$EPOCHREALTIME
    as_pg env PGOPTIONS="-c synchronous_commit=off" "$pgbin/pgbench" -n -t "$n" -h "$WORK/sock" -p "$port" \
        -U postgres postgres >"$WORK/pgbench-t.log" 2>&1 || { cat "$WORK/pgbench-t.log" >&2; die "pgbench failed"; }
    t1=$EPOCHREALTIME
    counts="$("${PSQL[@]}" -F ' ' -c "SELECT count(DISTINCT aid), count(DISTINCT (aid - 1) / $per_page), pg_relation_size('pgbench_accounts') / 8192, pg_relation_size('pgbench_accounts_pkey') / 8192 FROM pgbench_history")"
    read -r distinct_aids distinct_pages accounts_pages pkey_pages <<<"$counts"
    note "PostgreSQL $major change: $n pgbench transactions in $(elapsed "$t0" "$t1") s ($(grep -o 'tps = [0-9.]*' "$WORK/pgbench-t.log" | head -1)); $distinct_aids distinct accounts updated, on $distinct_pages of the $pages0 original heap pages ($(awk -v a="$distinct_pages" -v b="$pages0" 'BEGIN{printf "%.1f", 100*a/b}') %); pgbench_accounts now $accounts_pages heap pages, its primary key $pkey_pages pages"

    log "--- incremental backups after the pgbench change"
    pb_backup "$major" "$cluster" incremental incr-pgbench
    [ "$PB_PARENT" = "$full_job" ] || die "the incremental set $PB_JOB is built on '$PB_PARENT', not on the full set $full_job"
    local incr_job="$PB_JOB" incr_lsn="$PB_START_LSN"
    summary_blocks "$major" "$full_lsn" "$incr_lsn" "pgbench change"
    if [ "$pgbr_ok" = 1 ]; then pgbr_backup "$major" incr incr-pgbench; fi

    # The same number of rows, clustered: what a block-level incremental gains when changes
    # are not spread over the whole table.
    local lo=$(( rows / 2 )) hi=$(( rows / 2 + n - 1 ))
    log "--- a clustered change: UPDATE of pgbench_accounts aid $lo..$hi ($n rows)"
    t0=$EPOCHREALTIME
    "${PSQL[@]}" -c "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid BETWEEN $lo AND $hi"
    t1=$EPOCHREALTIME
    note "PostgreSQL $major clustered change: UPDATE of $n consecutive accounts (aid $lo..$hi, about $(( n / per_page )) heap pages) in $(elapsed "$t0" "$t1") s; pgbench_accounts now $("${PSQL[@]}" -c "SELECT pg_relation_size('pgbench_accounts') / 8192") heap pages"
    pb_backup "$major" "$cluster" incremental incr-clustered
    [ "$PB_PARENT" = "$incr_job" ] || die "the incremental set $PB_JOB is built on '$PB_PARENT', not on the previous set $incr_job"
    summary_blocks "$major" "$incr_lsn" "$PB_START_LSN" "clustered change"
    incr_job="$PB_JOB"
    if [ "$pgbr_ok" = 1 ]; then pgbr_backup "$major" incr incr-clustered; fi

    log "--- restoring the polarbackup incremental $incr_job (a chain of three sets)"
    local target="$WORK/restore-$major"
    t0=$EPOCHREALTIME
    "${PB[@]}" restore --backup-id "$incr_job" --target-dir "$target" >/dev/null 2>"$WORK/pb-restore.log" \
        || { cat "$WORK/pb-restore.log" >&2; die "polarbackup restore failed"; }
    t1=$EPOCHREALTIME
    row polarbackup "$major" restore-incr "$(elapsed "$t0" "$t1")" - - - - "$(load1)" "job=$incr_job,restored_bytes=$(du -sb "$target" | cut -f1)"
    verify="$(as_pg "$pgbin/pg_verifybackup" "$target" 2>&1)" || { echo "$verify" >&2; die "pg_verifybackup failed"; }
    local check_sql="SELECT (SELECT count(*) FROM pgbench_accounts) || ' ' || (SELECT sum(abalance) FROM pgbench_accounts) || ' ' || (SELECT count(*) FROM pgbench_history) || ' ' || (SELECT count(*) FROM pgbench_tellers) || ' ' || (SELECT count(*) FROM pgbench_branches)"
    local source_counts restored_counts
    source_counts="$("${PSQL[@]}" -c "$check_sql")"
    local opts="-c port=$port2 -c listen_addresses='' -c unix_socket_directories='$WORK/sock2' -c archive_mode=off -c shared_buffers=128MB"
    [ "$major" -ge 17 ] && opts="$opts -c summarize_wal=off"
    as_pg "$pgbin/pg_ctl" -D "$target" -l "$WORK/pg$major-restored.log" -w -t 600 -o "$opts" \
        start >/dev/null || { tail -20 "$WORK/pg$major-restored.log" >&2; die "PostgreSQL did not start on the restored directory"; }
    PG2_PID="$(head -1 "$target/postmaster.pid")"
    PIDS+=("$PG2_PID")
    restored_counts="$(as_pg "$PSQL_BIN" -X -At -h "$WORK/sock2" -p "$port2" -U postgres -d postgres -c "$check_sql")"
    stop_tracked "$PG2_PID" INT "restored PostgreSQL"
    if [ "$source_counts" = "$restored_counts" ]; then
        note "PostgreSQL $major restore check: OK: pg_verifybackup: $verify; restored PostgreSQL started; accounts, sum(abalance), history, tellers, branches = $restored_counts, as the source"
    else
        note "PostgreSQL $major restore check: MISMATCH: restored $restored_counts, source $source_counts"
        die "the restored incremental differs from the source"
    fi
    rm -rf "$target"
    stop_tracked "$PG_PID" INT "source PostgreSQL"
    rm -rf "$pgdata" "$WORK/pgbr-repo-$major"
}

T0=$EPOCHREALTIME
for v in $VERSIONS; do run_version "$v"; done
note "load average (1/5/15 min) at end: $(cut -d' ' -f1-3 /proc/loadavg); the run took $(elapsed "$T0" "$EPOCHREALTIME") s"

# ------------------------------------------------------------------------------------------
# 3. summary: incremental/full per tool and version
python3 - "$TSV" <<'PY' | tee "$RESULTS_DIR/$STAMP.summary.md"
import sys
rows = []
comments = []
for line in open(sys.argv[1]):
    if line.startswith("#"):
        comments.append(line[2:].rstrip())
        continue
    f = line.rstrip("\n").split("\t")
    if f[0] == "tool":
        head = f
        continue
    rows.append(dict(zip(head, f)))
mib = lambda b: "%.1f" % (int(b) / 1048576) if b not in ("", "-") else ""
print("| tool | PostgreSQL | backup | wall s | job s | transferred MiB | stored MiB | stored without WAL MiB |")
print("|---|---|---|---:|---:|---:|---:|---:|")
for r in rows:
    if not r["kind"].startswith("restore"):
        print("| %s | %s | %s | %s | %s | %s | %s | %s |" % (r["tool"], r["pg"], r["kind"], r["wall_s"],
              r["job_s"] if r["job_s"] != "-" else "", mib(r["transferred_bytes"]), mib(r["stored_bytes"]),
              mib(r["stored_data_bytes"])))
print()
print("| tool | PostgreSQL | change | incremental/full transferred | incremental/full stored | same, without WAL | incremental/full wall |")
print("|---|---|---|---:|---:|---:|---:|")
pct = lambda a, b: "%.1f %%" % (100 * float(a) / float(b))
for kind, change in (("incr-pgbench", "pgbench -t (spread)"), ("incr-clustered", "UPDATE of consecutive rows")):
    for tool in ("polarbackup", "pgbackrest"):
        for pg in sorted({r["pg"] for r in rows}, key=int):
            full = [r for r in rows if r["tool"] == tool and r["pg"] == pg and r["kind"] == "full"]
            inc = [r for r in rows if r["tool"] == tool and r["pg"] == pg and r["kind"] == kind]
            if not full or not inc:
                print("| %s | %s | %s | not run | not run | not run | not run |" % (tool, pg, change))
                continue
            f, i = full[0], inc[0]
            print("| %s | %s | %s | %s | %s | %s | %s |" % (tool, pg, change, pct(i["transferred_bytes"], f["transferred_bytes"]),
                  pct(i["stored_bytes"], f["stored_bytes"]), pct(i["stored_data_bytes"], f["stored_data_bytes"]),
                  pct(i["wall_s"], f["wall_s"])))
print()
for c in comments:
    print("- " + c)
PY
log "raw numbers: $TSV"
