#!/usr/bin/env bash
# Quickstart: the whole loop on embedded defaults. Starts a throwaway PostgreSQL with sample
# data and polarbackup (SQLite metadata, local repository), backs the database up through the
# official Python SDK while showing the job's phases, restores the backup, starts PostgreSQL
# on the result and compares the data. Then point-in-time recovery: writes rows, notes the
# time, writes more, restores to the noted time from the full backup and the continuously
# archived WAL, and shows that exactly the first rows are there. Cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."

SCALE="${QUICKSTART_PGBENCH_SCALE:-20}"   # ~300 MB of pgbench data

bash scripts/install-deps.sh
echo "==> building polarbackup (release)"
cargo build --release --quiet -p polarbackup
# Where cargo put it: CARGO_TARGET_DIR if set (relative to here if relative), else ./target.
target_dir="${CARGO_TARGET_DIR:-target}"
case "$target_dir" in /*) ;; *) target_dir="$PWD/$target_dir" ;; esac
bin="$target_dir/release/polarbackup"

pgbin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
[ -x "$pgbin/initdb" ] || { echo "PostgreSQL server binaries not found" >&2; exit 1; }
# PostgreSQL refuses to run as root.
if [ "$(id -u)" = 0 ]; then as_pg=(runuser -u postgres --); else as_pg=(); fi

work="$(mktemp -d -t polarbackup-quickstart.XXXXXX)"
chmod 755 "$work"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pg_port="$(free_port)"
restored_port="$(free_port)"
pitr_port="$(free_port)"
server_pid=""
cleanup() {
    set +e
    [ -n "$server_pid" ] && kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    for d in "$work/restored" "$work/pitr" "$work/pgdata"; do
        [ -f "$d/postmaster.pid" ] && "${as_pg[@]}" "$pgbin/pg_ctl" -D "$d" -m fast -w stop >/dev/null 2>&1
    done
    rm -rf "$work"
}
trap cleanup EXIT

echo "==> starting a throwaway PostgreSQL on 127.0.0.1:$pg_port with pgbench scale $SCALE"
mkdir "$work/pgdata" "$work/sock" "$work/logs"
[ "$(id -u)" = 0 ] && chown postgres "$work/pgdata" "$work/sock" "$work/logs"
"${as_pg[@]}" "$pgbin/initdb" -D "$work/pgdata" -U postgres -A trust --data-checksums >/dev/null
cat >>"$work/pgdata/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$work/sock'
wal_level = replica
max_wal_senders = 10
CONF
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/pgdata" -l "$work/logs/pg.log" -w start >/dev/null
psql_at() { "$pgbin/psql" -X -q -A -t -h 127.0.0.1 -p "$1" -U postgres -d postgres -c "$2"; }
"$pgbin/pgbench" -i -q -s "$SCALE" -h 127.0.0.1 -p "$pg_port" -U postgres postgres 2>&1 | tail -n 1
"$pgbin/pgbench" -c 2 -t 500 -h 127.0.0.1 -p "$pg_port" -U postgres postgres >/dev/null 2>&1
echo "    database size: $(psql_at "$pg_port" "SELECT pg_size_pretty(pg_database_size('postgres'))")"

export POLARBACKUP_DATA_DIR="$work/polarbackup"
echo "==> starting polarbackup serve (data in $POLARBACKUP_DATA_DIR)"
coproc SERVER { exec "$bin" serve --listen 127.0.0.1:0 --wal-partial-secs 2 2>"$work/server.log"; }
server_pid=$SERVER_PID
read -r -t 30 listening <&"${SERVER[0]}" || { cat "$work/server.log" >&2; exit 1; }
endpoint="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["Listening"])' "$listening")"
echo "    listening on $endpoint"

json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
account="$("$bin" admin account create --name quickstart | json_field AccountId)"
key_json="$("$bin" admin key create --account "$account")"
cluster="$("$bin" admin cluster create --account "$account" --region cn-hangzhou \
    --engine postgresql --host 127.0.0.1 --port "$pg_port" --user postgres \
    --description quickstart | json_field DBClusterId)"
echo "==> registered cluster $cluster (account $account)"

# The key reaches the SDK through the environment, never through argv.
export POLARBACKUP_ENDPOINT="$endpoint" POLARBACKUP_CLUSTER="$cluster"
export POLARBACKUP_ACCESS_KEY_ID="$(json_field AccessKeyId <<<"$key_json")"
export POLARBACKUP_ACCESS_KEY_SECRET="$(json_field AccessKeySecret <<<"$key_json")"
backup_id="$(python3 scripts/quickstart.py)"

echo "==> restoring backup $backup_id"
"$bin" restore --backup-id "$backup_id" --target-dir "$work/restored"
[ "$(id -u)" = 0 ] && chown -R postgres "$work/restored"
echo "==> pg_verifybackup"
"${as_pg[@]}" "$pgbin/pg_verifybackup" "$work/restored"
echo "==> starting PostgreSQL on the restored directory (port $restored_port)"
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/restored" -l "$work/logs/restored.log" \
    -o "-p $restored_port -k $work/sock" -w start >/dev/null

# Row counts and an md5 over every row of every pgbench table, on both servers.
fingerprint() {
    local port="$1" out="" t
    for t in pgbench_accounts pgbench_branches pgbench_history pgbench_tellers; do
        out+="$t $(psql_at "$port" "SELECT count(*) || ' ' || coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '-') FROM $t x")"$'\n'
    done
    printf '%s' "$out"
}
source_fp="$(fingerprint "$pg_port")"
restored_fp="$(fingerprint "$restored_port")"
echo "    table              rows     md5 (source | restored)"
paste -d' ' <(printf '%s\n' "$source_fp") <(printf '%s\n' "$restored_fp" | cut -d' ' -f3) |
    awk '{printf "    %-18s %-8s %s | %s\n", $1, $2, $3, $4}'
if [ "$source_fp" = "$restored_fp" ]; then
    echo "quickstart: MATCH - the restored database has exactly the source's rows"
else
    echo "quickstart: MISMATCH - the restored data differs from the source" >&2
    exit 1
fi

echo "==> point-in-time recovery: rows, a noted time, more rows"
db_time() { psql_at "$pg_port" "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"; }
psql_at "$pg_port" "CREATE TABLE quickstart_pitr (batch int, n int); INSERT INTO quickstart_pitr SELECT 1, g FROM generate_series(1, 1000) g"
sleep 1
target="$(db_time)"
sleep 1
psql_at "$pg_port" "INSERT INTO quickstart_pitr SELECT 2, g FROM generate_series(1, 500) g"
echo "    batch 1: 1000 rows, then noted $target (the database's clock), then batch 2: 500 rows"
python3 scripts/quickstart.py logs
echo "==> restoring cluster $cluster to $target (the full backup and the archived WAL)"
# The newest WAL reaches the repository within --wal-partial-secs; until then the target is
# after the recovery window's end, and restore refuses before writing anything.
for attempt in $(seq 1 30); do
    if out="$("$bin" restore --cluster "$cluster" --recovery-time "$target" --target-dir "$work/pitr" 2>&1)"; then
        break
    fi
    case "$out" in
        *"outside the recovery window"*) sleep 1 ;;
        *) echo "$out" >&2; exit 1 ;;
    esac
done
[ -d "$work/pitr" ] || { echo "$out" >&2; exit 1; }
echo "$out" | sed 's/^/    /'
[ "$(id -u)" = 0 ] && chown -R postgres "$work/pitr"
echo "==> pg_ctl start on the restored directory (port $pitr_port): recovery stops at $target"
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/pitr" -l "$work/logs/pitr.log" \
    -o "-p $pitr_port -k $work/sock" -w -t 120 start >/dev/null
# pg_ctl returns once connections are accepted, which may be just before the promotion.
for attempt in $(seq 1 120); do
    writable="$(psql_at "$pitr_port" "SELECT NOT pg_is_in_recovery()")"
    [ "$writable" = t ] && break
    sleep 0.5
done
counts="$(psql_at "$pitr_port" "SELECT count(*) FILTER (WHERE batch = 1) || ' ' || count(*) FILTER (WHERE batch = 2) FROM quickstart_pitr")"
echo "    batch 1 rows: ${counts% *}, batch 2 rows: ${counts#* }, read-write: $writable"
if [ "$counts" = "1000 0" ] && [ "$writable" = t ]; then
    echo "quickstart: PITR MATCH - exactly the rows committed before $target"
else
    echo "quickstart: PITR MISMATCH - expected 1000 rows of batch 1 and none of batch 2" >&2
    exit 1
fi
