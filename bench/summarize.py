"""Summarizes a bench/results/<date>.tsv written by bench/backup_restore.sh as Markdown.

    python3 bench/summarize.py bench/results/2026-11-28.tsv

Per (tool, variant, operation, cache): runs, min and median wall time, MiB/s over the data
directory without pg_wal at min and median, output size, median CPU seconds of the tool (with
its child processes; for polarbackup the server process) and of PostgreSQL, sync time after the
tool exited, and the load average seen at the start of the runs. Then the throughput ratios (other tool's wall
time / polarbackup's wall time: > 1 means polarbackup is faster).
"""

import csv
import re
import statistics
import sys


def load(path):
    header = []
    rows = []
    lines = []
    with open(path) as f:
        for line in f:
            if line.startswith("#"):
                header.append(line[1:].strip())
            else:
                lines.append(line)
    for r in csv.DictReader(lines, delimiter="\t"):
        r["wall_s"] = float(r["wall_s"])
        r["sync_s"] = float(r["sync_s"]) if r["sync_s"] else 0.0
        r["output_bytes"] = int(r["output_bytes"] or 0)
        r["cpu_s"] = float(r["cpu_s"]) if r.get("cpu_s") else None
        r["pg_cpu_s"] = float(r["pg_cpu_s"]) if r.get("pg_cpu_s") else None
        r["data_bytes"] = int(r["data_bytes"])
        rows.append(r)
    return header, rows


def note(r, key):
    m = re.search(r"(?:^|,)%s=([0-9.]+)" % re.escape(key), r["notes"])
    return float(m.group(1)) if m else None


def main(path):
    header, rows = load(path)
    rows = [r for r in rows if r["cache"] in ("warm", "cold")]
    if not rows:
        print("no rows")
        return 1
    mib = rows[0]["data_bytes"] / 1048576
    groups = {}
    for r in rows:
        groups.setdefault((r["tool"], r["variant"], r["op"], r["cache"]), []).append(r)

    for line in header:
        print("- " + line)
    print()
    print("Data directory without pg_wal: %.0f MiB. MiB/s = that / wall time." % mib)
    print()
    print("| tool | variant | op | cache | n | wall min s | wall median s | MiB/s (at min) | MiB/s (at median) | output MiB | tool CPU s | PostgreSQL CPU s | sync after s | load1 at start | more (medians) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    med = {}
    mins = {}
    for key, rs in groups.items():
        walls = sorted(r["wall_s"] for r in rs)
        lo, md = walls[0], statistics.median(walls)
        med[key], mins[key] = md, lo
        extra = []
        for k in ("to_uploading_s", "upload_s", "check_s", "upload_cpu_s", "check_cpu_s",
                  "server_job_s", "client_cpu_s", "copy_phase_s", "probe_s"):
            vals = [v for v in (note(r, k) for r in rs) if v is not None]
            if vals:
                extra.append("%s %.2f" % (k, statistics.median(vals)))
        loads = ", ".join(r["load1"] for r in rs)
        def med_of(field):
            vals = [r[field] for r in rs if r[field] is not None]
            return "%.1f" % statistics.median(vals) if vals else "–"
        print("| %s | %s | %s | %s | %d | %.2f | %.2f | %.0f | %.0f | %.0f | %s | %s | %.2f | %s | %s |" % (
            key[0], key[1], key[2], key[3], len(rs), lo, md, mib / lo, mib / md,
            statistics.median(r["output_bytes"] for r in rs) / 1048576,
            med_of("cpu_s"), med_of("pg_cpu_s"),
            statistics.median(r["sync_s"] for r in rs), loads, "; ".join(extra)))
    print()

    def ratio(a, b, cache, label):
        ka, kb = a + (cache,), b + (cache,)
        if ka in med and kb in med:
            print("| %s | %s | %.2f | %.2f |" % (label, cache, med[kb] / med[ka], mins[kb] / mins[ka]))

    print("Throughput ratios, polarbackup / other (= other wall / polarbackup wall; > 1: polarbackup faster):")
    print()
    print("| comparison | cache | ratio of medians | ratio of minimums |")
    print("|---|---|---|---|")
    pb = ("polarbackup", "zstd1-verify", "backup")
    for cache in ("warm", "cold"):
        ratio(pb, ("pg_basebackup", "client-zstd1", "backup"), cache, "backup: polarbackup / pg_basebackup client-zstd:1")
        ratio(pb, ("pgbackrest", "zst1-pmax2", "backup"), cache, "backup: polarbackup / pgBackRest zst:1 process-max=2")
        ratio(pb, ("pg_basebackup", "none", "backup"), cache, "backup: polarbackup / pg_basebackup uncompressed")
    pbr = ("polarbackup", "restore", "restore")
    ratio(pbr, ("pgbackrest", "restore-pmax2", "restore"), "warm", "restore: polarbackup / pgbackrest restore process-max=2")
    ratio(pbr, ("tar", "x-pgbb-client-zstd1", "restore"), "warm", "restore: polarbackup / zstd -d | tar -x (pg_basebackup zstd)")
    ratio(pbr, ("tar", "x-pgbb-none", "restore"), "warm", "restore: polarbackup / tar -x (pg_basebackup uncompressed)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
