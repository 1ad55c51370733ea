"""When a polarbackup job started and finished, from the server's JSON log.

`job_times(log_path, job)` returns (start, end) as epoch seconds, each None if its line is
missing: "backup started" and "backup finished" (logged after the store's commit of the
Finished job). The benchmarks time polarbackup by these lines rather than by polling.
"""

import datetime
import json


def _epoch(stamp):
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def job_times(log_path, job):
    start = end = None
    for line in open(log_path):
        try:
            e = json.loads(line)
        except ValueError:
            continue
        f = e.get("fields", {})
        if str(f.get("job")) == str(job):
            if f.get("message") == "backup started":
                start = _epoch(e["timestamp"])
            elif f.get("message") == "backup finished":
                end = _epoch(e["timestamp"])
    return start, end
