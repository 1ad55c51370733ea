#!/usr/bin/env python3
"""What one nonce batch's sync costs on this file system: a 64-byte record written and
fdatasync'ed N times, either appended (the file grows: every sync also writes the inode's new
size, or commits it through the journal on a journaling file system) or written into zeros the
file already has (the nonce log's zero tail: data only), or, as a possible alternative, the
4 KiB block holding the record rewritten with O_DIRECT | O_DSYNC (no page cache, one system
call, timed whole since it is the sync; skipped where the file system refuses O_DIRECT). Each
case runs idle and beside BUSY busy loops (the API under load keeps both cores busy). Prints
p50, p90, p99 and p99.9 in ms per case and round, the CPU time this process spent per sync
(user + system: in a VM the exits of the device's notifications are charged to it), and the
share of the vCPUs' time the hypervisor stole meanwhile (/proc/stat): on this machine it steals
only when both vCPUs are busy and the disk is written, in stalls of several ms, which is where
the API's p99 on 16 connections came from (BENCHMARKS.md).

    python3 bench/fsync_tail.py [DIR] [N] [ROUNDS] [BUSY]     # defaults: /var/tmp 3000 3 2
"""

import mmap
import multiprocessing
import os
import resource
import sys
import time

RECORD = b"x" * 63 + b"\n"


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run(path, case, n):
    """Latency quantiles (ms) and CPU per sync (us), or None where O_DIRECT is refused."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        if case != "append":
            os.write(fd, b"\0" * (n * 64 + 4096))
            os.fsync(fd)
            os.lseek(fd, 0, os.SEEK_SET)
        if case == "direct dsync":
            os.close(fd)
            try:
                fd = os.open(path, os.O_RDWR | os.O_DIRECT | os.O_DSYNC)
            except OSError:
                fd = -1
                return None
            block = mmap.mmap(-1, 4096)  # page-aligned, as O_DIRECT wants
        lat = []
        cpu0 = cpu_seconds()
        for i in range(n):
            if case == "direct dsync":
                at = i * 64 % 4096
                block[at:at + 64] = RECORD
                t = time.perf_counter()
                try:
                    os.pwrite(fd, block, i * 64 // 4096 * 4096)
                except OSError:
                    return None
            else:
                os.write(fd, RECORD)
                t = time.perf_counter()
                os.fdatasync(fd)
            lat.append(time.perf_counter() - t)
        cpu_us = round((cpu_seconds() - cpu0) / n * 1e6, 1)
    finally:
        if fd >= 0:
            os.close(fd)
        os.unlink(path)
    lat.sort()
    return [round(lat[int(len(lat) * q)] * 1000, 3) for q in (0.5, 0.9, 0.99, 0.999)] + [cpu_us]


def cpu_ticks():
    """(stolen, all) ticks of every vCPU so far."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    return fields[7], sum(fields)


def steal_pct(before, after):
    total = after[1] - before[1]
    return round(100.0 * (after[0] - before[0]) / total, 1) if total else 0.0


def spin(stop):
    while not stop.is_set():
        pass


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "/var/tmp"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    busy = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    print("case\tload\tround\tp50_ms\tp90_ms\tp99_ms\tp99.9_ms\tcpu_us_per_sync\tsteal_pct")
    for load in ("idle", f"{busy} busy loops"):
        stop = multiprocessing.Event()
        spinners = []
        if load != "idle":
            spinners = [multiprocessing.Process(target=spin, args=(stop,)) for _ in range(busy)]
            for p in spinners:
                p.start()
        try:
            for r in range(1, rounds + 1):
                for case in ("append", "into zeros", "direct dsync"):
                    before = cpu_ticks()
                    q = run(os.path.join(d, f"fsync-tail-{os.getpid()}"), case, n)
                    if q is None:
                        print(case, load, r, "O_DIRECT refused", "", "", "", "", "", sep="\t", flush=True)
                        continue
                    print(case, load, r, *q, steal_pct(before, cpu_ticks()), sep="\t", flush=True)
                if load != "idle":
                    before = cpu_ticks()
                    time.sleep(2)
                    print("no writes", load, r, "", "", "", "", "", steal_pct(before, cpu_ticks()), sep="\t", flush=True)
        finally:
            stop.set()
            for p in spinners:
                p.join()


if __name__ == "__main__":
    main()
