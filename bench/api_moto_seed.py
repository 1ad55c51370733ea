"""moto's side of bench/api.sh: COUNT RDS instances, each with snapshots up to SNAPSHOTS
(moto makes one automated snapshot per instance; the rest are manual), through boto3 against
moto_server at ENDPOINT. Writes the instance ids to OUT_FILE and prints how many snapshots
DescribeDBSnapshots lists for the first one.

  api_moto_seed.py ENDPOINT COUNT SNAPSHOTS OUT_FILE
"""

import sys

import boto3


def main():
    endpoint, count, snapshots, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    # moto checks no signature: any key works.
    rds = boto3.client("rds", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="bench", aws_secret_access_key="bench")
    ids = []
    for i in range(count):
        iid = "bench-%05d" % i
        rds.create_db_instance(DBInstanceIdentifier=iid, DBInstanceClass="db.t3.micro",
                               Engine="postgres", AllocatedStorage=20,
                               MasterUsername="postgres", MasterUserPassword="benchbench")
        have = len(rds.describe_db_snapshots(DBInstanceIdentifier=iid)["DBSnapshots"])
        for j in range(have, snapshots):
            rds.create_db_snapshot(DBInstanceIdentifier=iid, DBSnapshotIdentifier="%s-manual-%d" % (iid, j))
        ids.append(iid)
    with open(out, "w") as f:
        f.write("\n".join(ids) + "\n")
    print(len(rds.describe_db_snapshots(DBInstanceIdentifier=ids[0])["DBSnapshots"]))


if __name__ == "__main__":
    main()
