#!/usr/bin/env python3
"""What writing a new file costs here, buffered against O_DIRECT: the machine property behind
the repository's and the restore's direct I/O.

    python3 bench/fresh_pages.py [DIR] [MiB]      # DIR on the disk to measure (/var/tmp)

Writes MiB (304) in 8 MiB writes to a new file, three ways, each with its fdatasync: buffered
into a new file, buffered again over the same file (its pages are cached now), and with
O_DIRECT into a new file; then reads the last one back with O_DIRECT. Prints wall and system
CPU seconds of each. On a VM whose guest hands free pages back to its host (free page
reporting), a buffered write into new pages faults each one in again on the host: that shows as
system CPU many times the overwrite's, while O_DIRECT copies nothing into the page cache.
"""
import mmap
import os
import resource
import sys
import time

WRITE = 8 << 20


def measure(label, fn):
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    fn()
    r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    print(f"{label:<34} wall {t1 - t0:6.3f} s   system CPU {r1.ru_stime - r0.ru_stime:6.3f} s")


def main():
    where = sys.argv[1] if len(sys.argv) > 1 else "/var/tmp"
    count = (int(sys.argv[2]) if len(sys.argv) > 2 else 304) // 8
    buf = mmap.mmap(-1, WRITE)  # page-aligned, as O_DIRECT needs
    buf.write(os.urandom(WRITE))
    paths = [os.path.join(where, f"fresh_pages.{os.getpid()}.{i}") for i in range(2)]

    def write(path, flags):
        def run():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | flags, 0o600)
            try:
                for i in range(count):
                    os.pwritev(fd, [buf], i * WRITE)
                os.fdatasync(fd)
            finally:
                os.close(fd)
        return run

    def read_direct(path):
        def run():
            fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
            try:
                for i in range(count):
                    os.preadv(fd, [buf], i * WRITE)
            finally:
                os.close(fd)
        return run

    print(f"# {count * 8} MiB in {WRITE >> 20} MiB writes under {where}")
    try:
        measure("buffered, new file", write(paths[0], 0))
        measure("buffered, same file again", write(paths[0], 0))
        measure("O_DIRECT, new file", write(paths[1], os.O_DIRECT))
        measure("O_DIRECT read back", read_direct(paths[1]))
    finally:
        for p in paths:
            if os.path.exists(p):
                os.unlink(p)


if __name__ == "__main__":
    main()
