"""Quickstart client: calls DescribeBackupTasks on a local polarbackup with the official SDKs."""

import json
import os
import sys

from alibabacloud_polardb20170801 import models
from alibabacloud_polardb20170801.client import Client
from alibabacloud_tea_openapi import models as openapi
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.client import AcsClient
from aliyunsdkpolardb.request.v20170801.DescribeBackupTasksRequest import (
    DescribeBackupTasksRequest,
)

endpoint = os.environ["POLARBACKUP_ENDPOINT"]
key = os.environ["POLARBACKUP_ACCESS_KEY_ID"]
secret = os.environ["POLARBACKUP_ACCESS_KEY_SECRET"]
cluster = os.environ["POLARBACKUP_CLUSTER"]


def new_sdk(algorithm=None):
    cfg = openapi.Config(access_key_id=key, access_key_secret=secret,
                         endpoint=endpoint, protocol="http")
    if algorithm:
        cfg.signature_algorithm = algorithm
    return Client(cfg)


ok = True
print("==> alibabacloud-polardb20170801 (ACS3-HMAC-SHA256): DescribeBackupTasks")
resp = new_sdk().describe_backup_tasks(
    models.DescribeBackupTasksRequest(dbcluster_id=cluster))
print(json.dumps(resp.body.to_map(), indent=2))
ok &= resp.status_code == 200 and resp.body.items is not None

print("==> aliyun-python-sdk-core (HMAC-SHA1): DescribeBackupTasks BackupMode=Manual")
old = AcsClient(key, secret, "cn-hangzhou")
req = DescribeBackupTasksRequest()
req.set_DBClusterId(cluster)
req.set_BackupMode("Manual")
req.set_endpoint(endpoint)
req.set_protocol_type("http")
body = json.loads(old.do_action_with_exception(req))
print(json.dumps(body, indent=2))
ok &= "Items" in body

print("==> the documented error for a bad BackupMode")
try:
    new_sdk("v2").describe_backup_tasks(
        models.DescribeBackupTasksRequest(dbcluster_id=cluster, backup_mode="Weekly"))
    ok = False
except Exception as e:  # the SDK's ClientException
    print(f"    {e.code} (HTTP {e.status_code}): {e.message}")
    ok &= e.code == "InvalidBackupMode.Malformed"

print("==> an unknown cluster")
try:
    req = DescribeBackupTasksRequest()
    req.set_DBClusterId("pc-000000000000000")
    req.set_endpoint(endpoint)
    req.set_protocol_type("http")
    old.do_action_with_exception(req)
    ok = False
except ServerException as e:
    print(f"    {e.get_error_code()} (HTTP {e.get_http_status()}): {e.get_error_msg()}")
    ok &= e.get_error_code() == "InvalidDBClusterId.NotFound"

print("quickstart: OK" if ok else "quickstart: FAILED")
sys.exit(0 if ok else 1)
