#!/usr/bin/env python3
"""Seeds the fuzz corpora (fuzz/corpus/<target>/) from real inputs.

- verify_v1, verify_v3, params, percent: the SDK requests captured in tests/fixtures/vectors;
- ram_policy: the policy documents of the RAM tests and the system policies;
- manifest: the repository's manifest samples (and any manifest.json given with --manifest);
- base_backup, wal_stream, pg_startup, timeline_history: what a real PostgreSQL sends to
  pg_basebackup and pg_receivewal, recorded through a loopback proxy (--pg-port: a server that
  trusts `postgres` on 127.0.0.1 and allows replication). Copy data is cut short so that each
  seed stays small while keeping the message structure.

Run from the repository root: python3 bench/fuzz_seed.py [--pg-port PORT] [--manifest FILE...]
"""
import argparse
import glob
import hashlib
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def put(target, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def vectors():
    for path in sorted(glob.glob(os.path.join(ROOT, "tests/fixtures/vectors/requests/*.raw"))):
        raw = open(path, "rb").read()
        v3 = b"\nauthorization: acs3-" in raw.lower()
        put("verify_v3" if v3 else "verify_v1", raw)
        head, _, body = raw.partition(b"\r\n\r\n")
        target = head.split(b"\r\n", 1)[0].split(b" ")[1]
        query = target.partition(b"?")[2]
        put("params", query + b"\0" + body)
        for pair in (query + b"&" + body).split(b"&"):
            if b"=" in pair:
                put("percent", pair.split(b"=", 1)[1])


def policies():
    sources = ["crates/polarbackup-auth/src/ram/system.rs"] + sorted(
        glob.glob(os.path.join(ROOT, "crates/polarbackup-auth/tests/ram_*.rs"))
    )
    for src in sources:
        text = open(os.path.join(ROOT, src)).read()
        for doc in re.findall(r'r#"(.*?)"#', text, re.S):
            if "Statement" in doc:
                put("ram_policy", doc.replace("{{", "{").replace("}}", "}").encode())


def manifests(extra):
    for path in sorted(glob.glob(os.path.join(ROOT, "crates/polarbackup-repo/tests/samples/*.json"))) + extra:
        put("manifest", open(path, "rb").read())


def histories():
    put("timeline_history", b"1\t0/3000158\tno recovery target specified\n")
    put("timeline_history", b"1\t0/3000158\tno recovery target specified\n\n"
        b"2\t0/5000000\tat restore point \"x\"\n# comment\n4\t1/A0\tbefore 2026-12-01\n")


class Recorder:
    """A loopback proxy to PostgreSQL that keeps each connection's server-to-client bytes."""

    def __init__(self, port):
        self.port = port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sessions = []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            client, _ = self.sock.accept()
            server = socket.create_connection(("127.0.0.1", self.port))
            got = bytearray()
            self.sessions.append(got)
            threading.Thread(target=self.pipe, args=(client, server, None), daemon=True).start()
            threading.Thread(target=self.pipe, args=(server, client, got), daemon=True).start()

    @staticmethod
    def pipe(src, dst, keep):
        try:
            while True:
                b = src.recv(65536)
                if not b:
                    break
                if keep is not None:
                    keep.extend(b)
                dst.sendall(b)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def messages(data):
    """(tag, body) of each backend message; a cut-off last one is dropped."""
    out, at = [], 0
    # The answer to an SSLRequest (or GSSENCRequest) is one byte: no encryption here.
    while data[at:at + 1] == b"N":
        at += 1
    while at + 5 <= len(data):
        tag = data[at:at + 1]
        (n,) = struct.unpack(">i", data[at + 1:at + 5])
        if at + 1 + n > len(data):
            break
        out.append((tag, bytes(data[at + 5:at + 1 + n])))
        at += 1 + n
    return out


def frame(tag, body):
    return tag + struct.pack(">i", len(body) + 4) + body


def after_startup(msgs):
    """The messages after the startup's ReadyForQuery, and the startup ones."""
    for i, (tag, _) in enumerate(msgs):
        if tag == b"Z":
            return msgs[i + 1:], msgs[:i + 1]
    return [], msgs


def shrink_copy(msgs, keep_data, cut):
    """Keeps `keep_data` CopyData messages per run of data, each cut to `cut` bytes."""
    out, run = [], 0
    for tag, body in msgs:
        if tag == b"d" and body[:1] in (b"d", b"w"):
            run += 1
            if run > keep_data:
                continue
            body = body[:cut]
        else:
            run = 0
        out.append((tag, body))
    return out


def record_postgres(port):
    rec = Recorder(port)
    proxy = str(rec.sock.getsockname()[1])
    common = ["-h", "127.0.0.1", "-p", proxy, "-U", "postgres", "-w"]
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["pg_basebackup", *common, "-D", os.path.join(tmp, "b"), "-Ft", "-X", "none",
                        "-P", "-c", "fast"], check=True, capture_output=True)
        os.makedirs(os.path.join(tmp, "w"))
        recv = subprocess.Popen(["pg_receivewal", *common, "-D", os.path.join(tmp, "w")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
        subprocess.run(["psql", *common, "-c", "CREATE TABLE IF NOT EXISTS fz AS SELECT 1 AS a; "
                        "CHECKPOINT; SELECT pg_switch_wal();"], check=True, capture_output=True)
        time.sleep(2)
        recv.terminate()
        recv.wait()
    time.sleep(0.5)
    for session in rec.sessions:
        msgs = messages(session)
        rest, startup = after_startup(msgs)
        put("pg_startup", bytes([0x7f]) + b"".join(frame(t, b) for t, b in startup))
        put("pg_startup", bytes([0x03]) + b"".join(frame(t, b) for t, b in startup))
        for i, (tag, body) in enumerate(rest):
            if tag == b"T" and b"recptr" in body:
                answer = shrink_copy(rest[i:], 3, 600)
                raw = b"".join(frame(t, b) for t, b in answer)
                put("base_backup", bytes([0x7f]) + raw)
                put("base_backup", bytes([0x10]) + raw[:20000])
                break
        for i, (tag, body) in enumerate(rest):
            if tag == b"W":
                answer = rest[i:]
                first = next((b for t, b in answer if t == b"d" and b[:1] == b"w"), None)
                if first is None:
                    break
                start = first[1:9]
                # Each XLogData cut to 256 bytes of WAL and moved to follow the one before, so
                # the stream stays consistent.
                (pos,) = struct.unpack(">Q", start)
                kept = []
                for t, b in answer[:40]:
                    if t == b"d" and b[:1] == b"w":
                        wal = b[25:281]
                        b = b"w" + struct.pack(">QQ", pos, pos + len(wal)) + b[17:25] + wal
                        pos += len(wal)
                    kept.append((t, b))
                put("wal_stream", bytes([0x7f]) + start + b"".join(frame(t, b) for t, b in kept))
                break
            if tag == b"T" and b"next_tli" in body:
                pass
    # Authentication requests a server may send instead of trust.
    md5 = frame(b"R", struct.pack(">i", 5) + b"salt")
    scram = frame(b"R", struct.pack(">i", 10) + b"SCRAM-SHA-256\0\0")
    cleartext = frame(b"R", struct.pack(">i", 3))
    for auth in (md5, scram, cleartext):
        put("pg_startup", bytes([0x7f]) + auth)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg-port", type=int)
    ap.add_argument("--manifest", action="append", default=[])
    args = ap.parse_args()
    vectors()
    policies()
    manifests(args.manifest)
    histories()
    if args.pg_port:
        record_postgres(args.pg_port)
    for target in sorted(os.listdir(CORPUS)):
        print(target, len(os.listdir(os.path.join(CORPUS, target))))


if __name__ == "__main__":
    main()
