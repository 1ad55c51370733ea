"""Creates an S3 bucket with one SigV4-signed PUT (for the benchmarks' SeaweedFS).

  AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… python3 bench/s3_bucket.py http://127.0.0.1:PORT BUCKET

Only the standard library, so a fresh machine needs no S3 client. Exits 0 when the bucket was
created or already exists.
"""

import datetime
import hashlib
import hmac
import os
import sys
import urllib.error
import urllib.request

REGION = "us-east-1"
EMPTY = hashlib.sha256(b"").hexdigest()


def _hmac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def main():
    endpoint, bucket = sys.argv[1].rstrip("/"), sys.argv[2]
    key, secret = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
    host = endpoint.split("://", 1)[1]
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    signed = "host;x-amz-content-sha256;x-amz-date"
    canonical = f"PUT\n/{bucket}\n\nhost:{host}\nx-amz-content-sha256:{EMPTY}\nx-amz-date:{amz_date}\n\n{signed}\n{EMPTY}"
    scope = f"{day}/{REGION}/s3/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    k = _hmac(("AWS4" + secret).encode(), day)
    for part in (REGION, "s3", "aws4_request"):
        k = _hmac(k, part)
    signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    req = urllib.request.Request(f"{endpoint}/{bucket}", method="PUT", data=b"")
    req.add_header("x-amz-date", amz_date)
    req.add_header("x-amz-content-sha256", EMPTY)
    req.add_header(
        "Authorization",
        f"AWS4-HMAC-SHA256 Credential={key}/{scope}, SignedHeaders={signed}, Signature={signature}",
    )
    try:
        urllib.request.urlopen(req, timeout=30).read()
    except urllib.error.HTTPError as e:
        body = e.read().decode(errors="replace")
        if "BucketAlreadyExists" not in body and "BucketAlreadyOwnedByYou" not in body:
            sys.exit(f"create bucket {bucket}: HTTP {e.code}: {body}")


if __name__ == "__main__":
    main()
