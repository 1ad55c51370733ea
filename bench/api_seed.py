"""Bulk seeding for bench/api.sh: copies rows the server itself wrote, many times, in one
transaction, so a store holds 10k clusters and up to a million jobs in seconds rather than hours.

Nothing here invents a row's shape: every column comes from a template row that `admin cluster
create` (clusters, backup_policies) or the server's worker (a failed backup: its job and its
failed set) wrote. Only the columns that identify or date a row change: ids, cluster ids,
descriptions and times. Run it while no server has the store open.

  api_seed.py clusters DB TEMPLATE_CLUSTER COUNT OUT_FILE
      adds clusters (copies of TEMPLATE_CLUSTER and its backup policy) until the template's
      account has COUNT; writes every cluster id of the account to OUT_FILE, the template first.
  api_seed.py jobs DB TEMPLATE_JOB CLUSTERS_FILE HOT_COUNT RECENT TOTAL NOW
      adds jobs (copies of TEMPLATE_JOB and its set) until backup_jobs holds TOTAL rows. Each of
      the first HOT_COUNT clusters gets RECENT jobs in the last RECENT days (shown by
      DescribeBackupTasks, whose history is 7 days); every other job is history, one a day
      further back than 8 days, dealt round-robin over all clusters (listed by no call, but on
      the same index the query walks). NOW is the epoch second the run treats as now.
"""

import random
import sqlite3
import string
import sys

DAY = 86400
ALPHABET = string.ascii_lowercase + string.digits


def connect(db):
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("PRAGMA foreign_keys = ON")
    c.execute("PRAGMA busy_timeout = 10000")
    return c


def columns(c, table):
    return [r[1] for r in c.execute("PRAGMA table_info(%s)" % table)]


def template(c, table, key, value):
    cols = columns(c, table)
    row = c.execute("SELECT * FROM %s WHERE %s = ?" % (table, key), (value,)).fetchone()
    if row is None:
        sys.exit("api_seed: no %s row with %s = %r" % (table, key, value))
    return cols, dict(zip(cols, row))


def insert_many(c, table, cols, rows):
    sql = "INSERT INTO %s (%s) VALUES (%s)" % (table, ", ".join(cols), ", ".join("?" * len(cols)))
    c.executemany(sql, ([row[k] for k in cols] for row in rows))


def seed_clusters(db, template_id, count, out_file):
    c = connect(db)
    ccols, cluster = template(c, "clusters", "id", template_id)
    pcols, policy = template(c, "backup_policies", "cluster_id", template_id)
    account = cluster["account_id"]
    have = {r[0] for r in c.execute("SELECT id FROM clusters WHERE account_id = ?", (account,))}
    rng = random.Random(13)
    new = []
    while len(have) + len(new) < count:
        cid = "pc-" + "".join(rng.choice(ALPHABET) for _ in range(15))
        if cid in have or cid in new:
            continue
        new.append(cid)
    c.execute("BEGIN IMMEDIATE")
    insert_many(c, "clusters", ccols,
                (dict(cluster, id=cid, description="bench %d" % i) for i, cid in enumerate(new)))
    insert_many(c, "backup_policies", pcols, (dict(policy, cluster_id=cid) for cid in new))
    c.execute("COMMIT")
    ids = [template_id] + sorted(
        r[0] for r in c.execute("SELECT id FROM clusters WHERE account_id = ? AND id != ?",
                                (account, template_id)))
    with open(out_file, "w") as f:
        f.write("\n".join(ids) + "\n")
    print("clusters: %d added, %d in the account" % (len(new), len(ids)))


def seed_jobs(db, template_job, clusters_file, hot_count, recent, total, now):
    c = connect(db)
    jcols, job = template(c, "backup_jobs", "id", template_job)
    scols, bset = template(c, "backup_sets", "id", template_job)
    clusters = open(clusters_file).read().split()
    hot = clusters[:hot_count]
    have = c.execute("SELECT count(*) FROM backup_jobs").fetchone()[0]
    # The job and its set share an id; AUTOINCREMENT hands it out, as it does for the server.
    jcols = [k for k in jcols if k != "id"]
    scols = [k for k in scols if k != "id"]
    duration = (job["ended_at"] or job["start_time"]) - job["start_time"]
    set_times = (bset["start_time"] - job["start_time"], bset["end_time"] - job["start_time"])

    def one(cluster, start):
        c.execute("INSERT INTO backup_jobs (%s) VALUES (%s)" % (", ".join(jcols), ", ".join("?" * len(jcols))),
                  [dict(job, cluster_id=cluster, start_time=start, ended_at=start + duration)[k] for k in jcols])
        row = dict(bset, cluster_id=cluster, start_time=start + set_times[0], end_time=start + set_times[1])
        c.execute("INSERT INTO backup_sets (id, %s) VALUES (last_insert_rowid(), %s)"
                  % (", ".join(scols), ", ".join("?" * len(scols))), [row[k] for k in scols])

    # Recent jobs go in first, and only once (the first size).
    hot_done = c.execute("SELECT count(*) FROM backup_jobs WHERE cluster_id = ? AND start_time >= ?",
                         (hot[-1], now - recent * DAY)).fetchone()[0] >= recent
    c.execute("BEGIN IMMEDIATE")
    added = 0
    if not hot_done:
        for day in range(recent, 0, -1):
            for i, cluster in enumerate(hot):
                one(cluster, now - day * DAY + 3600 + i)
                added += 1
    history = c.execute("SELECT count(*) FROM backup_jobs WHERE start_time < ?",
                        (now - 8 * DAY,)).fetchone()[0]
    while have + added < total:
        # The n-th history job: cluster n mod len, n // len days before the 8th day back.
        n = history
        one(clusters[n % len(clusters)], now - (8 + n // len(clusters)) * DAY - (n % 3600))
        history += 1
        added += 1
    c.execute("COMMIT")
    print("jobs: %d added, %d stored" % (added, have + added))


def main():
    cmd = sys.argv[1]
    if cmd == "clusters":
        seed_clusters(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    elif cmd == "jobs":
        db, tmpl, cfile, hot, recent, total, now = sys.argv[2:9]
        seed_jobs(db, int(tmpl), cfile, int(hot), int(recent), int(total), int(now))
    else:
        sys.exit("usage: see the docstring")


if __name__ == "__main__":
    main()
