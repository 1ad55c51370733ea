"""Quickstart client: one manual backup through the official SDK, its phases, then the set;
with `logs`, the log backup: its policy, the recovery window and the archived WAL."""

import json
import os
import sys
import time

from alibabacloud_polardb20170801 import models
from alibabacloud_polardb20170801.client import Client
from alibabacloud_tea_openapi import models as openapi

cluster = os.environ["POLARBACKUP_CLUSTER"]
client = Client(openapi.Config(
    access_key_id=os.environ["POLARBACKUP_ACCESS_KEY_ID"],
    access_key_secret=os.environ["POLARBACKUP_ACCESS_KEY_SECRET"],
    endpoint=os.environ["POLARBACKUP_ENDPOINT"], protocol="http"))


def say(*args):
    print(*args, file=sys.stderr, flush=True)


def show_logs():
    say("==> DescribeLogBackupPolicy, DescribeLocalAvailableRecoveryTime, DescribeBackupLogs")
    policy = client.describe_log_backup_policy(models.DescribeLogBackupPolicyRequest(
        dbcluster_id=cluster)).body
    say(f"    EnableBackupLog {policy.enable_backup_log}, "
        f"LogBackupRetentionPeriod {policy.log_backup_retention_period} days")
    window = client.describe_local_available_recovery_time(
        models.DescribeLocalAvailableRecoveryTimeRequest(dbcluster_id=cluster)).body
    say(f"    recovery window: {window.recovery_begin_time} .. {window.recovery_end_time}")
    logs = client.describe_backup_logs(models.DescribeBackupLogsRequest(
        dbcluster_id=cluster, start_time="2000-01-01T00:00Z",
        end_time=time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(time.time() + 3600)))).body
    say(f"    {logs.total_record_count} archived WAL objects (the first page, oldest first):")
    for item in (logs.items.backup_log if logs.items else [])[:6]:
        say(f"      {item.backup_log_id} {item.backup_log_name} {item.backup_log_size} bytes "
            f"{item.backup_log_start_time} .. {item.backup_log_end_time}")


if sys.argv[1:] == ["logs"]:
    show_logs()
    sys.exit(0)


say("==> CreateBackup (alibabacloud-polardb20170801, ACS3-HMAC-SHA256)")
job_id = client.create_backup(models.CreateBackupRequest(
    dbcluster_id=cluster, comment="quickstart")).body.backup_job_id
say(f"    BackupJobId {job_id}; DescribeBackupTasks as the job moves:")
last = None
started = time.monotonic()
while True:
    jobs = client.describe_backup_tasks(models.DescribeBackupTasksRequest(
        dbcluster_id=cluster, backup_job_id=job_id)).body.items.backup_job
    job = jobs[0]
    state = (job.backup_progress_status, job.process)
    if state != last:
        say(f"    {time.monotonic() - started:6.2f}s  {json.dumps(job.to_map())}")
        last = state
    if job.backup_progress_status in ("Finished", "Failed"):
        break
    time.sleep(0.1)
if job.backup_progress_status != "Finished":
    say("quickstart: the backup failed; see the server log")
    sys.exit(1)

say("==> DescribeBackups")
now = time.gmtime()
sets = client.describe_backups(models.DescribeBackupsRequest(
    dbcluster_id=cluster, start_time="2000-01-01T00:00Z",
    end_time=time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(time.time() + 3600))))
say(json.dumps(sets.body.to_map(), indent=2))
print(job_id)
