"""Small building blocks of CloudFormation templates (JSON as dicts), shared by the infra
template's parts (plan/cloud/infra_template.py, plan/cloud/infra_https.py)."""

from __future__ import annotations

from typing import Any


def ref(name: str) -> dict:
    return {"Ref": name}


def att(name: str, attribute: str) -> dict:
    return {"Fn::GetAtt": [name, attribute]}


def ingress(port: int, description: str, *, cidr: str | None = None, group: str | None = None) -> dict:
    """One TCP port from a CIDR block or from the members of a security group (by logical id)."""
    rule: dict[str, Any] = {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "Description": description}
    if cidr is not None:
        rule["CidrIpv6" if ":" in cidr else "CidrIp"] = cidr
    else:
        rule["SourceSecurityGroupId"] = att(group, "GroupId")  # type: ignore[arg-type]
    return rule
