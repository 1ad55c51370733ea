#!/usr/bin/env bash
# Quickstart: build polarbackup, start it on embedded defaults (SQLite in a throwaway data
# directory, a free loopback port), register an account, a key and a cluster, and call
# DescribeBackupTasks through the official Python SDKs. Cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
echo "==> building polarbackup (release)"
cargo build --release --quiet -p polarbackup
bin="$PWD/target/release/polarbackup"

work="$(mktemp -d -t polarbackup-quickstart.XXXXXX)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

export POLARBACKUP_DATA_DIR="$work/data"
echo "==> starting polarbackup serve (data in $POLARBACKUP_DATA_DIR)"
coproc SERVER { exec "$bin" serve --listen 127.0.0.1:0 2>"$work/server.log"; }
server_pid=$SERVER_PID
read -r -t 30 listening <&"${SERVER[0]}" || { cat "$work/server.log" >&2; exit 1; }
endpoint="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["Listening"])' "$listening")"
echo "    listening on $endpoint"

json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

account="$("$bin" admin account create --name quickstart | json_field AccountId)"
key_json="$("$bin" admin key create --account "$account")"
cluster="$("$bin" admin cluster create --account "$account" --region cn-hangzhou \
    --engine postgresql --host 127.0.0.1 --port 5432 --user postgres \
    --description quickstart | json_field DBClusterId)"
echo "==> account $account, cluster $cluster"

# The key reaches the SDK through the environment, never through argv.
POLARBACKUP_ENDPOINT="$endpoint" \
POLARBACKUP_ACCESS_KEY_ID="$(json_field AccessKeyId <<<"$key_json")" \
POLARBACKUP_ACCESS_KEY_SECRET="$(json_field AccessKeySecret <<<"$key_json")" \
POLARBACKUP_CLUSTER="$cluster" \
    python3 scripts/quickstart.py

echo "==> stopping the server (SIGTERM, graceful)"
kill -TERM "$server_pid"
wait "$server_pid" && echo "    server exited cleanly"
server_pid=""
