"""Arranging moto's state for a test: EC2 instances with tags, an RDS instance. moto's state
is shared by the whole session, so callers give every test its own tag values and names."""

from __future__ import annotations

REGION = "eu-west-1"


def launch(ec2, role: str, *, env: str = "production", state: str = "running", **tags: str) -> str:
    """An instance tagged Role=<role>, Env=<env> and `tags`; stopped when asked. Its id."""
    all_tags = {"Role": role, "Env": env, **tags}
    instance = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, TagSpecifications=[
        {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in all_tags.items()]}])["Instances"][0]
    if state == "stopped":
        ec2.stop_instances(InstanceIds=[instance["InstanceId"]])
    return instance["InstanceId"]


def create_rds_instance(rds, identifier: str) -> dict:
    """A MySQL DB instance; its Endpoint ({"Address": ..., "Port": ...})."""
    rds.create_db_instance(DBInstanceIdentifier=identifier, DBInstanceClass="db.t3.micro", Engine="mysql",
                           MasterUsername="admin", MasterUserPassword="not-used-1", AllocatedStorage=20)
    return rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]["Endpoint"]
