"""How small the changed blocks between two copies of a data directory can be stored.

    python3 bench/page_delta.py BEFORE AFTER

BEFORE and AFTER are copies of one cluster's data directory (stopped cleanly) taken before and
after a change. For every main-fork relation file under base/ and global/, the blocks of AFTER
that differ from BEFORE are counted (heap and index pages apart: a page with no special space
is a heap page) and stored four ways, each measured with zstd level 1:

  whole    the changed blocks as they are, one zstd stream: what a block-level incremental
           (polarbackup's, PostgreSQL 17's, pgBackRest's block incremental) stores
  xor      each changed block XORed with its parent, one zstd stream: a byte-level delta
  prefix   each changed block compressed with its parent block as zstd's raw-content
           dictionary, one frame a block: a delta that follows bytes moved within the page
  best     per block, the smaller of xor (alone, in a frame of its own) and prefix

Blocks past the end of BEFORE's file have no parent and count whole in every column. The
reference is a zstd-1 stream of every file of AFTER (pg_wal left out): a full backup.
Prints one table (bytes and percent of the full) and a line per page kind.
"""

import os
import struct
import sys

import zstandard

BLCKSZ = 8192


def relation_files(root):
    for sub in ("base", "global"):
        for dirpath, _, files in os.walk(os.path.join(root, sub)):
            for name in sorted(files):
                stem = name.split(".")[0]
                if stem.isdigit():
                    yield os.path.relpath(os.path.join(dirpath, name), root)


def full_size(root):
    stream = zstandard.ZstdCompressor(level=1).compressobj()
    raw = stored = 0
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not (dirpath == root and d == "pg_wal"))
        for name in sorted(files):
            path = os.path.join(dirpath, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as f:
                    data = f.read()
                raw += len(data)
                stored += len(stream.compress(data))
    return raw, stored + len(stream.flush())


class Column:
    def __init__(self):
        self.stream = zstandard.ZstdCompressor(level=1).compressobj()
        self.bytes = 0

    def add(self, data):
        self.bytes += len(self.stream.compress(data))

    def close(self):
        self.bytes += len(self.stream.flush())
        return self.bytes


def frame(data, parent=None):
    """The size of `data` in a zstd-1 frame of its own (with `parent` as its dictionary),
    after checking that the frame decompresses back to `data`."""
    params = dict(level=1, write_content_size=False, write_checksum=False, write_dict_id=False)
    dictionary = None
    if parent is not None:
        dictionary = zstandard.ZstdCompressionDict(parent, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
        params["dict_data"] = dictionary
    out = zstandard.ZstdCompressor(**params).compress(data)
    back = zstandard.ZstdDecompressor(dict_data=dictionary).decompress(out, max_output_size=BLCKSZ)
    if back != data:
        sys.exit("a delta frame did not decompress to its block")
    return len(out)


def main(before, after):
    kinds = {}
    cols = {"whole": Column(), "xor": Column()}
    prefix = best = 0
    for rel in relation_files(after):
        with open(os.path.join(after, rel), "rb") as f:
            new = f.read()
        old_path = os.path.join(before, rel)
        old = b""
        if os.path.exists(old_path):
            with open(old_path, "rb") as f:
                old = f.read()
        for at in range(0, len(new) - len(new) % BLCKSZ, BLCKSZ):
            block, parent = new[at:at + BLCKSZ], old[at:at + BLCKSZ]
            if block == parent:
                continue
            special = struct.unpack_from("<H", block, 16)[0]
            kind = ("heap" if special == BLCKSZ else "index") + ("" if len(parent) == BLCKSZ else ", new")
            k = kinds.setdefault(kind, {"blocks": 0, "bytes_differing": 0, "best": 0})
            k["blocks"] += 1
            cols["whole"].add(block)
            if len(parent) == BLCKSZ:
                x = (int.from_bytes(block, "little") ^ int.from_bytes(parent, "little")).to_bytes(BLCKSZ, "little")
                k["bytes_differing"] += BLCKSZ - x.count(0)
                cols["xor"].add(x)
                p = frame(block, parent)
                b = min(p, frame(x))
            else:
                k["bytes_differing"] += BLCKSZ
                cols["xor"].add(block)
                p = b = frame(block)
            prefix += p
            best += b
            k["best"] += b
    raw, full = full_size(after)
    sizes = {name: c.close() for name, c in cols.items()}
    sizes["prefix"] = prefix
    sizes["best"] = best
    mib = 1 << 20
    blocks = sum(k["blocks"] for k in kinds.values())
    if blocks == 0:
        sys.exit("no relation block differs between %s and %s" % (before, after))
    print("full (zstd-1 stream of %s, pg_wal left out): %.1f MiB raw, %.2f MiB stored" % (after, raw / mib, full / mib))
    print("changed relation blocks: %d (%.1f MiB raw)" % (blocks, blocks * BLCKSZ / mib))
    print()
    print("| encoding of the changed blocks | stored MiB | % of the full |")
    print("|---|---|---|")
    for name in ("whole", "xor", "prefix", "best"):
        print("| %s | %.2f | %.1f %% |" % (name, sizes[name] / mib, 100 * sizes[name] / full))
    print()
    for kind, k in sorted(kinds.items()):
        print("%s: %d blocks, %.0f bytes differ a block on average, best %.2f MiB (%.0f bytes a block)" % (
            kind, k["blocks"], k["bytes_differing"] / k["blocks"], k["best"] / mib, k["best"] / k["blocks"]))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
