"""Benchmark client: one polarbackup backup through the official Python SDK.

CreateBackup, then DescribeBackupTasks every --interval seconds until the job is Finished or
Failed. Prints one JSON object on stdout:

  {"job": "...", "status": "Finished", "wall": 7.91,          # CreateBackup sent -> Finished seen
   "first_seen": {"Preparing": 0.05, "Uploading": 0.61, "Checking": 6.32, "Finished": 7.91},
   "polls": 41, "set_size": "1634..."}

Times are seconds from just before CreateBackup was sent (time.monotonic). The resolution is
the poll interval plus one request (~10 ms). Key and secret come from the environment only:
POLARBACKUP_ENDPOINT, POLARBACKUP_ACCESS_KEY_ID, POLARBACKUP_ACCESS_KEY_SECRET, POLARBACKUP_CLUSTER.
With BENCH_SERVER_PID set, also records the server process's CPU seconds when each status is
first seen ("server_cpu"), so CPU per phase can be told apart from waiting.
"""

import argparse
import json
import os
import resource
import sys
import time

from alibabacloud_polardb20170801 import models
from alibabacloud_polardb20170801.client import Client
from alibabacloud_tea_openapi import models as openapi


def proc_cpu(pid):
    """User + system CPU seconds of a process so far (Linux /proc)."""
    try:
        with open("/proc/%s/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)
    except OSError:
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--interval", type=float, default=0.2)
    ap.add_argument("--timeout", type=float, default=1800)
    args = ap.parse_args()

    cluster = os.environ["POLARBACKUP_CLUSTER"]
    client = Client(openapi.Config(
        access_key_id=os.environ["POLARBACKUP_ACCESS_KEY_ID"],
        access_key_secret=os.environ["POLARBACKUP_ACCESS_KEY_SECRET"],
        endpoint=os.environ["POLARBACKUP_ENDPOINT"], protocol="http",
        read_timeout=30000, connect_timeout=5000))

    server_pid = os.environ.get("BENCH_SERVER_PID")
    server_cpu = {"CreateBackup": proc_cpu(server_pid)} if server_pid else {}
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    wall_t0 = time.time()
    resp = client.create_backup(models.CreateBackupRequest(dbcluster_id=cluster))
    job = resp.body.backup_job_id
    first_seen = {"CreateBackupAnswered": round(time.monotonic() - t0, 3)}
    polls = 0
    status = None
    while True:
        r = client.describe_backup_tasks(
            models.DescribeBackupTasksRequest(dbcluster_id=cluster, backup_job_id=job))
        polls += 1
        now = round(time.monotonic() - t0, 3)
        items = r.body.items.backup_job if r.body.items and r.body.items.backup_job else []
        if items:
            status = items[0].backup_progress_status
            if status not in first_seen:
                first_seen[status] = now
                if server_pid:
                    server_cpu[status] = proc_cpu(server_pid)
        if status in ("Finished", "Failed"):
            wall = now
            break
        if now > args.timeout:
            wall = now
            status = "Timeout"
            break
        time.sleep(args.interval)

    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    # CPU this client spent between CreateBackup and Finished (it competes with the server).
    client_cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    out = {"job": job, "status": status, "wall": wall, "first_seen": first_seen,
           "polls": polls, "client_cpu_s": round(client_cpu, 3), "start_epoch": wall_t0,
           "server_cpu": server_cpu}
    # BackupSetSize as the API reports it (best effort; needs a time window).
    try:
        fmt = "%Y-%m-%dT%H:%MZ"
        d = client.describe_backups(models.DescribeBackupsRequest(
            dbcluster_id=cluster, backup_id=job,
            start_time=time.strftime(fmt, time.gmtime(wall_t0 - 3600)),
            end_time=time.strftime(fmt, time.gmtime(time.time() + 3600))))
        sets = d.body.items.backup if d.body.items and d.body.items.backup else []
        if sets:
            out["set_size"] = sets[0].backup_set_size
            out["backup_id"] = sets[0].backup_id
    except Exception as e:  # noqa: BLE001 - informational only
        out["describe_backups_error"] = str(e)[:200]
    print(json.dumps(out))
    return 0 if status == "Finished" else 1


if __name__ == "__main__":
    sys.exit(main())
