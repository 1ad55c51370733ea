"""WAL archiving benchmark helper for bench/wal_archive.sh: probe, sampler, analysis, summary.

    python3 bench/wal_bench.py wait    --sock S --port P --mode pb|pgbr ... [--timeout 300]
    python3 bench/wal_bench.py run     --sock S --port P --mode pb|pgbr ... --out DIR \\
                                       --load-secs 60 --probe-tail 10 -- pgbench ...
    python3 bench/wal_bench.py analyze --out DIR            # one JSON object on stdout
    python3 bench/wal_bench.py summarize RESULTS.tsv         # Markdown tables

`run` starts the load command (pgbench), and next to it:
  * a probe: every --probe-interval s (0.1) it commits one row of bench_probe (autocommit, so
    synchronous_commit holds), notes the wall time when the commit returned and then
    pg_current_wal_insert_lsn(), which is at or past the commit record's end;
  * a sampler: every --sample-interval s (0.05) it reads pg_current_wal_lsn() and the
    position durable in the repository:
      pb    the archiver slot's restart_lsn: the flush position polarbackup reports to
            PostgreSQL, which never passes WAL that is durable in the repository and recorded in
            the metadata store (so this is at or behind the store's newest WAL end; the benchmark
            does not read the metadata store, whose format belongs to polarbackup-store);
      pgbr  the end of the contiguous run of segments in pgBackRest's repository (a segment's
            file appears there once written and synced) and, for comparison, the end of
            pg_stat_archiver.last_archived_wal (PostgreSQL's view: archive-push returned).
The probe stops --probe-tail s before the load ends, so that its last rows lie in segments that
the load still fills. After the load, the sampler keeps going until the durable position passes
the LSN at the load's end (pgbr: the start of its segment, since pgBackRest archives only whole
segments and no archive_timeout is set), or --drain-timeout. Lag is taken while the load runs.

PostgreSQL is reached through its Unix socket with a tiny client of the frontend/backend
protocol (trust authentication, simple queries), so the benchmark needs no driver package.
"""

import argparse
import json
import os
import re
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time

SEGMENT_FILE = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})-[0-9a-f]{40}\.(?:zst|gz|lz4|bz2)$")
WAL_NAME = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$")


class PgError(Exception):
    pass


class Pg:
    """A minimal PostgreSQL client: trust authentication, simple query protocol, text rows."""

    def __init__(self, sock_dir, port, user="postgres", database="postgres", app="wal-bench"):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(os.path.join(sock_dir, ".s.PGSQL.%d" % port))
        self.f = self.sock.makefile("rb")
        params = b""
        for k, v in (("user", user), ("database", database), ("application_name", app)):
            params += k.encode() + b"\0" + v.encode() + b"\0"
        body = struct.pack("!i", 196608) + params + b"\0"
        self.sock.sendall(struct.pack("!i", len(body) + 4) + body)
        self._until_ready()

    def _msg(self):
        head = self.f.read(5)
        if len(head) < 5:
            raise PgError("connection closed")
        kind, length = head[:1], struct.unpack("!i", head[1:])[0]
        return kind, self.f.read(length - 4)

    def _until_ready(self):
        rows, error = [], None
        while True:
            kind, body = self._msg()
            if kind == b"R" and struct.unpack("!i", body[:4])[0] != 0:
                raise PgError("only trust authentication is supported")
            if kind == b"D":
                n = struct.unpack("!h", body[:2])[0]
                pos, row = 2, []
                for _ in range(n):
                    size = struct.unpack("!i", body[pos:pos + 4])[0]
                    pos += 4
                    if size < 0:
                        row.append(None)
                    else:
                        row.append(body[pos:pos + size].decode())
                        pos += size
                rows.append(row)
            elif kind == b"E":
                fields = dict((f[:1], f[1:].decode(errors="replace")) for f in body.split(b"\0") if f)
                error = fields.get(b"M", "error")
            elif kind == b"Z":
                if error:
                    raise PgError(error)
                return rows

    def query(self, sql):
        b = sql.encode() + b"\0"
        self.sock.sendall(b"Q" + struct.pack("!i", len(b) + 4) + b)
        return self._until_ready()

    def one(self, sql):
        rows = self.query(sql)
        return rows[0][0] if rows else None

    def close(self):
        try:
            self.sock.sendall(b"X" + struct.pack("!i", 4))
        except OSError:
            pass
        self.sock.close()


def lsn(text):
    if text is None:
        return None
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def wal_name_end(name, seg_size):
    """The end LSN of a WAL segment file name (timeline, log, segment)."""
    m = WAL_NAME.match(name or "")
    if not m:
        return None
    log, seg = int(m.group(2), 16), int(m.group(3), 16)
    per_log = 0x100000000 // seg_size
    return (log * per_log + seg + 1) * seg_size


class Durable:
    """Reads the position durable in the repository (and a second, comparison position)."""

    def __init__(self, args, pg):
        self.args = args
        self.seg_size = int(pg.one("SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'"))
        self.present = set()
        self.contiguous = None  # pgbr: highest segment number of the contiguous run

    def read(self, pg):
        """(durable, comparison) LSNs; the comparison is PostgreSQL's view (pgbr only)."""
        if self.args.mode == "pb":
            slot = lsn(pg.one("SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = '%s'"
                              % self.args.slot))
            return slot, None
        archived = wal_name_end(pg.one("SELECT last_archived_wal FROM pg_stat_archiver"), self.seg_size)
        return self._repo_end(), archived

    def _repo_end(self):
        per_log = 0x100000000 // self.seg_size
        for sub in sorted(os.listdir(self.args.repo_wal)) if os.path.isdir(self.args.repo_wal) else []:
            path = os.path.join(self.args.repo_wal, sub)
            if not os.path.isdir(path):
                continue
            for name in os.listdir(path):
                m = SEGMENT_FILE.match(name)
                if m:
                    self.present.add(int(m.group(2), 16) * per_log + int(m.group(3), 16))
        if not self.present:
            return None
        if self.contiguous is None:
            self.contiguous = min(self.present)
        while self.contiguous + 1 in self.present:
            self.contiguous += 1
        return (self.contiguous + 1) * self.seg_size


def connect(args, app):
    return Pg(args.sock, args.port, app=app)


def cmd_wait(args):
    """Waits until everything written so far is durable (pgbr: every complete segment)."""
    pg = connect(args, "wal-bench-wait")
    d = Durable(args, pg)
    target = lsn(pg.one("SELECT pg_current_wal_lsn()"))
    if args.mode == "pgbr":
        target -= target % d.seg_size
    deadline = time.monotonic() + args.timeout
    while True:
        durable, _ = d.read(pg)
        if durable is not None and durable >= target:
            print("durable %d >= %d" % (durable, target))
            return 0
        if time.monotonic() > deadline:
            print("timeout: durable %s < %d" % (durable, target), file=sys.stderr)
            return 1
        time.sleep(0.2)


def cmd_run(args):
    os.makedirs(args.out, exist_ok=True)
    pg_s = connect(args, "wal-bench-sampler")
    pg_p = connect(args, "wal-bench-probe")
    pg_p.query("CREATE TABLE IF NOT EXISTS bench_probe (id int PRIMARY KEY, t timestamptz NOT NULL DEFAULT clock_timestamp())")
    durable = Durable(args, pg_s)
    samples, probes = [], []
    stop_probe = threading.Event()
    stop_sampler = threading.Event()
    errors = []

    def sampler():
        try:
            while not stop_sampler.is_set():
                t0 = time.time()
                cur = lsn(pg_s.one("SELECT pg_current_wal_lsn()"))
                d, other = durable.read(pg_s)
                samples.append((t0, cur, time.time(), d, other))
                time.sleep(max(0.0, args.sample_interval - (time.time() - t0)))
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            errors.append("sampler: %r" % e)

    def probe():
        try:
            k, start = 0, time.monotonic()
            while not stop_probe.is_set():
                k += 1
                pg_p.query("INSERT INTO bench_probe (id) VALUES (%d)" % k)
                t_commit = time.time()
                at = lsn(pg_p.one("SELECT pg_current_wal_insert_lsn()"))
                probes.append((k, t_commit, at))
                time.sleep(max(0.0, start + k * args.probe_interval - time.monotonic()))
        except Exception as e:  # noqa: BLE001
            errors.append("probe: %r" % e)

    ts = threading.Thread(target=sampler, daemon=True)
    ts.start()
    time.sleep(max(args.sample_interval * 4, 0.2))  # a few samples before the load
    t_load0 = time.time()
    load = subprocess.Popen(args.load, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    tp = threading.Thread(target=probe, daemon=True)
    tp.start()
    probe_until = time.monotonic() + max(1.0, args.load_secs - args.probe_tail)
    while time.monotonic() < probe_until and load.poll() is None:
        time.sleep(0.05)
    stop_probe.set()
    tp.join()
    out, _ = load.communicate()
    t_load1 = time.time()
    pg_e = connect(args, "wal-bench-end")
    lsn_load1 = lsn(pg_e.one("SELECT pg_current_wal_lsn()"))
    pg_e.close()
    target = lsn_load1 - (lsn_load1 % durable.seg_size if args.mode == "pgbr" else 0)
    drained_at = None
    deadline = time.monotonic() + args.drain_timeout
    while time.monotonic() < deadline and not errors:
        if samples and samples[-1][3] is not None and samples[-1][3] >= target and samples[-1][2] > t_load1:
            drained_at = samples[-1][2]
            break
        time.sleep(args.sample_interval)
    stop_sampler.set()
    ts.join()
    pg_s.close()
    pg_p.close()
    with open(os.path.join(args.out, "samples.tsv"), "w") as f:
        f.write("t_cur\tcur_lsn\tt_durable\tdurable_lsn\tother_lsn\n")
        for s in samples:
            f.write("%.6f\t%d\t%.6f\t%s\t%s\n" % (s[0], s[1], s[2], "" if s[3] is None else s[3],
                                                 "" if s[4] is None else s[4]))
    with open(os.path.join(args.out, "probes.tsv"), "w") as f:
        f.write("id\tt_commit\tlsn\n")
        for p in probes:
            f.write("%d\t%.6f\t%d\n" % p)
    meta = {
        "mode": args.mode, "t_load0": t_load0, "t_load1": t_load1, "lsn_load1": lsn_load1,
        "drain_target": target, "drained_at": drained_at, "seg_size": durable.seg_size,
        "load_rc": load.returncode, "load_output": out.decode(errors="replace"), "errors": errors,
        "sample_interval": args.sample_interval, "probe_interval": args.probe_interval,
    }
    with open(os.path.join(args.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    if load.returncode != 0 or errors:
        print(out.decode(errors="replace"), file=sys.stderr)
        print("errors: %s, load exit %s" % (errors, load.returncode), file=sys.stderr)
        return 1
    return 0


def read_tsv(path):
    with open(path) as f:
        next(f)
        return [[None if x == "" else float(x) for x in line.rstrip("\n").split("\t")] for line in f]


def percentile(xs, q):
    """Nearest-rank percentile (q in 0..100); inf sorts last."""
    if not xs:
        return None
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(-(-q * len(s) // 100)) - 1))
    return s[k]


def first_time_at(series, pos):
    """The first time at which the (time, position) series reached pos, interpolated between
    samples; None if never."""
    prev = None
    for t, p in series:
        if p is not None and p >= pos:
            if prev is None or prev[1] is None or p == prev[1]:
                return t
            t0, p0 = prev
            return t0 + (t - t0) * (pos - p0) / (p - p0)
        prev = (t, p)
    return None


def durable_time(samples, pos):
    """When the durable position was first seen at or past pos (sampler resolution)."""
    for s in samples:
        if s[3] is not None and s[3] >= pos:
            return s[2]
    return None


def rpo(samples, probes, col):
    out = []
    for _, t_commit, at in probes:
        t = None
        for s in samples:
            if s[col] is not None and s[col] >= at:
                t = s[2]
                break
        out.append(float("inf") if t is None else max(0.0, t - t_commit))
    return out


def lag_series(samples, t0, t1, col):
    """(max lag bytes, max lag seconds) over samples taken in [t0, t1], by durable column col."""
    if all(s[col] is None for s in samples):
        return None, None
    gen = [(s[0], s[1]) for s in samples]
    max_b, max_s = 0, 0.0
    for s in samples:
        if not (t0 <= s[2] <= t1) or s[col] is None:
            continue
        max_b = max(max_b, s[1] - s[col])
        if s[col] < s[1]:
            g = first_time_at(gen, s[col])
            if g is not None:
                max_s = max(max_s, s[2] - g)
    return max_b, max_s


def at_time(samples, t, idx_t, idx_v):
    """The last sample value at or before t."""
    v = None
    for s in samples:
        if s[idx_t] <= t and s[idx_v] is not None:
            v = s[idx_v]
    return v


def cmd_analyze(args):
    meta = json.load(open(os.path.join(args.out, "meta.json")))
    samples = read_tsv(os.path.join(args.out, "samples.tsv"))
    probes = read_tsv(os.path.join(args.out, "probes.tsv"))
    t0, t1 = meta["t_load0"], meta["t_load1"]
    secs = t1 - t0
    cur0, cur1 = at_time(samples, t0, 0, 1), at_time(samples, t1, 0, 1)
    cur1 = max(cur1 or 0, meta["lsn_load1"])
    dur0, dur1 = at_time(samples, t0, 2, 3), at_time(samples, t1, 2, 3)
    wal = cur1 - cur0
    r = {
        "load_s": round(secs, 2),
        "wal_bytes": wal,
        "gen_mib_s": round(wal / secs / 1048576, 2),
        "arch_mib_s": round((dur1 - dur0) / secs / 1048576, 2) if dur0 is not None and dur1 is not None else None,
    }
    # Catching up after the load: every segment completed during it durable (both tools);
    # for polarbackup also the segment in progress at the end (its partial, by --wal-partial-secs).
    seg = meta["seg_size"]
    floor = meta["lsn_load1"] - meta["lsn_load1"] % seg
    t_floor = durable_time(samples, floor)
    r["drain_s"] = round(max(0.0, t_floor - t1), 2) if t_floor else None
    r["arch_to_drained_mib_s"] = (round((floor - (dur0 or 0)) / (max(t_floor, t1) - t0) / 1048576, 2)
                                  if t_floor and dur0 is not None else None)
    t_full = durable_time(samples, meta["lsn_load1"])
    r["tail_durable_s"] = round(max(0.0, t_full - t1), 2) if t_full else None
    # Lag while the load runs. After it, pgBackRest never archives the segment in progress
    # (no archive_timeout) and polarbackup stores it by --wal-partial-secs: not comparable.
    lag_b, lag_s = lag_series(samples, t0, t1, 3)
    r["max_lag_mib"] = round(lag_b / 1048576, 2)
    r["max_lag_s"] = round(lag_s, 2)
    lag_b2, lag_s2 = lag_series(samples, t0, t1, 4)
    r["max_lag_mib_pgside"] = None if lag_b2 is None else round(lag_b2 / 1048576, 2)
    r["max_lag_s_pgside"] = None if lag_s2 is None else round(lag_s2, 2)
    rp = rpo(samples, probes, 3)
    rp2 = rpo(samples, probes, 4) if any(s[4] is not None for s in samples) else []
    r["probes"] = len(probes)
    r["probes_not_durable"] = sum(1 for x in rp if x == float("inf"))
    for name, xs in (("rpo", rp), ("rpo_pgside", rp2)):
        for q in (50, 99):
            v = percentile(xs, q)
            r["%s_p%d_s" % (name, q)] = None if v is None or v == float("inf") else round(v, 3)
        v = max(xs) if xs else None
        r["%s_max_s" % name] = None if v is None or v == float("inf") else round(v, 3)
    m = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", meta["load_output"])
    r["tps"] = round(float(m.group(1)), 1) if m else None
    # The PITR target: the last probe at least --back s before the last one.
    if probes:
        last = probes[-1][1]
        pick = [p for p in probes if p[1] <= last - args.back] or probes[:1]
        r["pitr_target_id"] = int(pick[-1][0])
        r["pitr_target_epoch"] = pick[-1][1]
    r["sample_interval_s"] = meta["sample_interval"]
    r["errors"] = meta["errors"]
    json.dump(r, sys.stdout)
    print()
    return 0


# ----------------------------------------------------------------------------------------------
# summary

METRICS = [
    # column, label, better ("low", "high", "" = context)
    ("tps", "pgbench tps", "high"),
    ("gen_mib_s", "WAL generated MiB/s", ""),
    ("arch_mib_s", "archived MiB/s (during the load)", "high"),
    ("max_lag_mib", "max archive lag MiB", "low"),
    ("max_lag_s", "max archive lag s", "low"),
    ("rpo_p50_s", "RPO p50 s", "low"),
    ("rpo_p99_s", "RPO p99 s", "low"),
    ("rpo_max_s", "RPO max s", "low"),
    ("drain_s", "catch-up after the load s (complete segments)", "low"),
    ("tail_durable_s", "segment in progress at the end durable after s", "low"),
    ("archiver_cpu_s", "archiver CPU s", "low"),
    ("archiver_cpu_s_per_gib", "archiver CPU s per GiB of WAL", "low"),
    ("pg_side_cpu_s", "PostgreSQL's archiving process CPU s", "low"),
    ("pg_cpu_s", "PostgreSQL CPU s (all)", "low"),
    ("repo_wal_mib", "WAL in the repository MiB", "low"),
    ("pitr_restore_s", "PITR: restore command s", "low"),
    ("pitr_recovery_s", "PITR: recovery to promoted s", "low"),
    ("pitr_total_s", "PITR: total s", "low"),
]


def load_results(path):
    header, lines = [], []
    for line in open(path):
        (header if line.startswith("#") else lines).append(line.rstrip("\n"))
    cols = lines[0].split("\t")
    rows = [dict(zip(cols, line.split("\t"))) for line in lines[1:] if line]
    return header, rows


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def fmt(v):
    if v is None:
        return "–"
    if abs(v) >= 100:
        return "%.0f" % v
    if abs(v) >= 10:
        return "%.1f" % v
    return "%.2f" % v


def cmd_summarize(args):
    header, rows = load_results(args.tsv)
    tools = [("polarbackup", "polarbackup"), ("pgbackrest", "pgBackRest")]
    med = {}
    for tool, _ in tools:
        sel = [r for r in rows if r["tool"] == tool]
        med[tool] = {}
        for col, _, _ in METRICS:
            vals = [num(r.get(col)) for r in sel]
            vals = [v for v in vals if v is not None]
            med[tool][col] = statistics.median(vals) if vals else None
        med[tool]["n"] = len(sel)
    print("# WAL archiving: polarbackup vs pgBackRest archive-push (async, zst:1)\n")
    for h in header:
        print("* " + h.lstrip("# "))
    print()
    n = max(med[t]["n"] for t, _ in tools)
    print("Medians over %d round(s) per tool. Ratio: polarbackup / pgBackRest "
          "(for lag, RPO, CPU, size and time, < 1 means polarbackup is better).\n" % n)
    print("| metric | polarbackup | pgBackRest | ratio pb/pgBackRest |")
    print("|---|---|---|---|")
    for col, label, _ in METRICS:
        a, b = med["polarbackup"][col], med["pgbackrest"][col]
        if a is None and b is None:
            continue
        ratio = "–" if a is None or b in (None, 0) else "%.2f" % (a / b)
        print("| %s | %s | %s | %s |" % (label, fmt(a), fmt(b), ratio))
    print()
    print("Per round:\n")
    cols = ["tool", "round", "load1", "tps", "gen_mib_s", "arch_mib_s", "max_lag_mib", "max_lag_s",
            "rpo_p50_s", "rpo_p99_s", "archiver_cpu_s", "pitr_total_s", "pitr_check"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(r.get(c, "") or "–" for c in cols) + " |")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("wait", "run"):
        p = sub.add_parser(name)
        p.add_argument("--sock", required=True)
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--mode", choices=("pb", "pgbr"), required=True)
        p.add_argument("--slot", help="pb: the archiver's replication slot")
        p.add_argument("--repo-wal", help="pgbr: <repo>/archive/<stanza>/<version>-<id>")
        p.add_argument("--timeout", type=float, default=300)
        if name == "run":
            p.add_argument("--out", required=True)
            p.add_argument("--load-secs", type=float, required=True)
            p.add_argument("--probe-tail", type=float, default=10)
            p.add_argument("--probe-interval", type=float, default=0.1)
            p.add_argument("--sample-interval", type=float, default=0.05)
            p.add_argument("--drain-timeout", type=float, default=120)
            p.add_argument("load", nargs=argparse.REMAINDER)
    p = sub.add_parser("analyze")
    p.add_argument("--out", required=True)
    p.add_argument("--back", type=float, default=5, help="PITR target: seconds before the last probe")
    p = sub.add_parser("summarize")
    p.add_argument("tsv")
    args = ap.parse_args()
    if args.cmd == "run":
        if args.load and args.load[0] == "--":
            args.load = args.load[1:]
        if not args.load:
            ap.error("run needs the load command after --")
        return cmd_run(args)
    return {"wait": cmd_wait, "analyze": cmd_analyze, "summarize": cmd_summarize}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
