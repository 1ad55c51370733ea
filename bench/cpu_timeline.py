"""CPU timeline of one backup: who is on the two cores, sampled every few tens of milliseconds.

    python3 bench/cpu_timeline.py SERVER_PID POSTMASTER_PID EVERY_S OUT.tsv
    python3 bench/cpu_timeline.py --summary AB.tsv     # per backup of a bench/backup_ab.sh run

Until OUT.tsv.stop exists, every EVERY_S seconds it writes one row:

    t (s since the first sample)  machine busy cores (/proc/stat, all of the machine's work)
    server cores  PostgreSQL cores  {thread group: cores} (JSON)

Server cores come from the on-CPU nanoseconds of each server thread (/proc/PID/task/*/schedstat),
PostgreSQL's from every child of the postmaster (the walsender of a backup shows as
"pg:walsender"). The first line is "# t0_epoch=..." (wall clock of t = 0, to line the rows up
with a client's timestamps); the last lines give the machine's CPU by kind (user, system, idle,
iowait, softirq, steal) and the CPU seconds per thread name of every process visible here, over
the whole sampling. What the machine was busy with beyond the server, PostgreSQL and the names
listed ran in processes this container cannot see. /proc/stat counts in ticks (10 ms), so single
rows are coarse; sums over a window are not. The sampler itself costs ~7 % of a core at 25 ms.
"""

import json
import os
import sys
import time

KINDS = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]


def columns():
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:9]]


def machine():
    """(busy ticks, all ticks) of the whole machine so far."""
    v = columns()
    return sum(v) - v[3] - v[4], sum(v)


def schedstat_ns(path):
    with open(path) as f:
        return int(f.read().split()[0])


def server_threads(pid):
    r = {}
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return r
    for t in tids:
        try:
            ns = schedstat_ns("/proc/%d/task/%s/schedstat" % (pid, t))
            with open("/proc/%d/task/%s/comm" % (pid, t)) as f:
                comm = f.read().strip()
        except (OSError, ValueError, IndexError):
            continue
        r[(pid, int(t))] = ("tokio" if comm.startswith("tokio-r") else comm, ns)
    return r


def pg_processes(postmaster):
    r = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid != postmaster and int(p) != postmaster:
                continue
            ns = schedstat_ns("/proc/%s/schedstat" % p)
            with open("/proc/%s/cmdline" % p) as f:
                cmd = f.read().replace("\0", " ").strip()
        except (OSError, ValueError, IndexError):
            continue
        name = cmd.split(":", 1)[1].strip().split()[0] if ":" in cmd else "postmaster"
        r[(int(p), 0)] = ("pg:" + name, ns)
    return r


def every_thread():
    """CPU ns per (pid, tid) of every thread visible here, with its name."""
    r = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            for t in os.listdir("/proc/%s/task" % p):
                ns = schedstat_ns("/proc/%s/task/%s/schedstat" % (p, t))
                with open("/proc/%s/task/%s/comm" % (p, t)) as f:
                    r[(p, t)] = (f.read().strip(), ns)
        except (OSError, ValueError, IndexError):
            continue
    return r


def main():
    server, postmaster, every, out = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    first, c0 = every_thread(), columns()
    prev = None
    t0 = time.monotonic()
    with open(out, "w") as f:
        f.write("# t0_epoch=%.3f\n" % time.time())
        while not os.path.exists(out + ".stop"):
            now = time.monotonic()
            m = machine()
            threads = server_threads(server)
            threads.update(pg_processes(postmaster))
            if prev:
                pt, pm, pthreads = prev
                dt = now - pt
                busy = (m[0] - pm[0]) / max(1, m[1] - pm[1]) * os.cpu_count()
                groups = {}
                for k, (name, ns) in threads.items():
                    # A process that appeared since the last sample ran only since then.
                    d = ns - pthreads[k][1] if k in pthreads else ns
                    groups[name] = groups.get(name, 0) + d / 1e9 / dt
                srv = sum(v for g, v in groups.items() if not g.startswith("pg:"))
                pg = sum(v for g, v in groups.items() if g.startswith("pg:"))
                f.write("%.3f\t%.2f\t%.2f\t%.2f\t%s\n" % (
                    now - t0, busy, srv, pg,
                    json.dumps({g: round(v, 2) for g, v in groups.items() if v > 0.005})))
            prev = (now, m, threads)
            time.sleep(every)
        c1, last = columns(), every_thread()
        hz = os.sysconf("SC_CLK_TCK")
        kinds = {n: round((c1[i] - c0[i]) / hz, 2) for i, n in enumerate(KINDS)}
        f.write("# machine cpu_s by kind: %s\n" % json.dumps(kinds))
        per_name = {}
        for k, (name, ns) in last.items():
            per_name[name] = per_name.get(name, 0) + (ns - first[k][1] if k in first else ns) / 1e9
        top = sorted(per_name.items(), key=lambda kv: -kv[1])[:15]
        f.write("# cpu_s by thread name: %s\n" % json.dumps({n: round(v, 3) for n, v in top}))


def summary(ab_tsv):
    """For each backup of an A/B run with timelines: core-seconds from CreateBackup to Finished
    that were idle, ours, PostgreSQL's and other work's, then the same by stretch: the start (to
    the first 0.1 s), the stream and the end (the last 0.12 s)."""
    import csv
    stamp = os.path.basename(ab_tsv).split(".ab.tsv")[0]
    for r in csv.DictReader(open(ab_tsv), delimiter="\t"):
        seen = dict(kv.split("=", 1) for kv in r["first_seen"].split(","))
        start, wall = float(seen["start_epoch"]), float(r["wall_s"])
        path = os.path.join(os.path.dirname(ab_tsv), "%s-%s-%s.timeline.tsv" % (stamp, r["label"], r["round"]))
        if not os.path.exists(path):
            continue
        lines = open(path).read().splitlines()
        t0 = float(lines[0].split("=")[1])
        acc = {}
        prev = None
        for line in lines[1:]:
            if line.startswith("#"):
                continue
            t, busy, srv, pg = (float(x) for x in line.split("\t")[:4])
            t += t0 - start
            if prev is not None and 0 <= t <= wall + 0.03:
                dt = t - prev
                part = "start" if t <= 0.1 else "end" if t > wall - 0.12 else "stream"
                for part in ("all", part):
                    a = acc.setdefault(part, [0.0, 0.0, 0.0, 0.0, 0.0])
                    a[0] += dt
                    a[1] += max(0.0, 2 - busy) * dt
                    a[2] += srv * dt
                    a[3] += pg * dt
                    a[4] += max(0.0, busy - srv - pg) * dt
            prev = t
        print("%s round %s wall %.2f s: %s" % (r["label"], r["round"], wall, "; ".join(
            "%s %.2f s: idle %.2f, server %.2f, PostgreSQL %.2f, other %.2f core-s" % (p, *acc[p])
            for p in ("all", "start", "stream", "end") if p in acc)))


if __name__ == "__main__":
    if sys.argv[1] == "--summary":
        summary(sys.argv[2])
    else:
        main()
