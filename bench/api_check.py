"""Read-back check for bench/api.sh: the seeded rows, as the server answers them.

For each cluster given, DescribeBackupTasks through the official Python SDK (as the benchmark's
RAM user, so its policy is exercised too) must list exactly the jobs the store holds for that
cluster within the server's job history, and each must render like the template job the server
itself wrote, except its id and start time. Key and secret come from the environment:
POLARBACKUP_ENDPOINT, POLARBACKUP_ACCESS_KEY_ID, POLARBACKUP_ACCESS_KEY_SECRET.

  api_check.py DB TEMPLATE_JOB HISTORY_DAYS CLUSTER...
"""

import datetime
import os
import sqlite3
import sys

from alibabacloud_polardb20170801 import models
from alibabacloud_polardb20170801.client import Client
from alibabacloud_tea_openapi import models as openapi


def main():
    db, template_job, history_days = sys.argv[1], sys.argv[2], int(sys.argv[3])
    clusters = sys.argv[4:]
    client = Client(openapi.Config(
        access_key_id=os.environ["POLARBACKUP_ACCESS_KEY_ID"],
        access_key_secret=os.environ["POLARBACKUP_ACCESS_KEY_SECRET"],
        endpoint=os.environ["POLARBACKUP_ENDPOINT"], protocol="http"))
    c = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    template_cluster = c.execute("SELECT cluster_id FROM backup_jobs WHERE id = ?",
                                 (template_job,)).fetchone()[0]

    def listed(cluster):
        r = client.describe_backup_tasks(models.DescribeBackupTasksRequest(dbcluster_id=cluster))
        items = r.body.items.backup_job if r.body.items and r.body.items.backup_job else []
        return [j.to_map() for j in items]

    template = [j for j in listed(template_cluster) if j["BackupJobId"] == template_job]
    if len(template) != 1:
        sys.exit("api_check: template job %s not listed" % template_job)
    shape = {k: v for k, v in template[0].items() if k not in ("BackupJobId", "StartTime")}
    since = int(datetime.datetime.now(datetime.timezone.utc).timestamp()) - history_days * 86400
    checked = 0
    for cluster in clusters:
        want = c.execute("SELECT id, start_time FROM backup_jobs WHERE cluster_id = ?"
                         " AND (ended_at IS NULL OR ended_at >= ?) ORDER BY start_time DESC, id DESC",
                         (cluster, since)).fetchall()
        got = listed(cluster)
        ids = [(int(j["BackupJobId"]), j["StartTime"]) for j in got]
        expect = [(i, datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
                   .strftime("%Y-%m-%dT%H:%M:%SZ")) for i, t in want]
        if ids != expect:
            sys.exit("api_check: %s lists %r, the store holds %r" % (cluster, ids[:5], expect[:5]))
        for j in got:
            rest = {k: v for k, v in j.items() if k not in ("BackupJobId", "StartTime")}
            if rest != shape:
                sys.exit("api_check: job %s renders %r, the template %r" % (j["BackupJobId"], rest, shape))
        checked += len(got)
    print("api_check: %d clusters, %d jobs as the store holds them, rendered as the template" % (
        len(clusters), checked))


if __name__ == "__main__":
    main()
