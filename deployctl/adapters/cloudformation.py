"""CloudFormation, and the stores of the generated database password (SSM, Secrets
Manager), through boto3 (imported lazily). Errors go through adapters/aws.py's `_calling`:
AWS unreachable, no credentials or access denied is a ConnectError (exit 4)."""

from __future__ import annotations

import json
import time
from typing import Any, Callable

from ..errors import DeployError
from ..secrets import redactor
from .aws import CREDENTIAL_CODES, DENIED_CODES, THROTTLE_CODES, _calling, client, error_code

CFN_PERMISSION = "cloudformation:* on the stack (and the EC2, Auto Scaling, ELB and RDS actions it runs)"


def _missing_stack(exc: Any) -> bool:
    return error_code(exc) == "ValidationError" and "does not exist" in exc.response.get("Error", {}).get("Message", "")


def describe_stack(region: str | None, name: str) -> dict | None:
    """The stack's description, or None when there is none (or only a deleted one)."""
    from botocore.exceptions import ClientError

    with _calling(f"CloudFormation DescribeStacks for {name!r}", region, "cloudformation:DescribeStacks"):
        try:
            stacks = client("cloudformation", region).describe_stacks(StackName=name).get("Stacks") or []
        except ClientError as exc:
            if _missing_stack(exc):
                return None
            raise
    live = [s for s in stacks if s.get("StackStatus") != "DELETE_COMPLETE"]
    return live[0] if live else None


def stack_template(region: str | None, name: str) -> dict | None:
    with _calling(f"CloudFormation GetTemplate for {name!r}", region, "cloudformation:GetTemplate"):
        body = client("cloudformation", region).get_template(StackName=name, TemplateStage="Original")["TemplateBody"]
    if isinstance(body, str):
        try:
            return json.loads(body)
        except ValueError:
            return None  # a YAML template made by someone else: no property comparison
    return json.loads(json.dumps(body))


def create_change_set(region: str | None, stack: str, change_set: str, body: str, *, create: bool,
                      tags: dict[str, str]) -> str:
    with _calling(f"CloudFormation CreateChangeSet for {stack!r}", region, "cloudformation:CreateChangeSet"):
        answer = client("cloudformation", region).create_change_set(
            StackName=stack, ChangeSetName=change_set, ChangeSetType="CREATE" if create else "UPDATE",
            TemplateBody=body, Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
            Description="deployctl infra")
    return answer["Id"]


def wait_change_set(region: str | None, change_set_id: str, *, timeout: float = 600.0, every: float = 2.0) -> dict:
    """The change set once it is no longer being created, with all its changes."""
    deadline = time.monotonic() + timeout
    with _calling("CloudFormation DescribeChangeSet", region, "cloudformation:DescribeChangeSet"):
        cfn = client("cloudformation", region)
        while True:
            answer = cfn.describe_change_set(ChangeSetName=change_set_id)
            if answer.get("Status") not in ("CREATE_PENDING", "CREATE_IN_PROGRESS") or time.monotonic() > deadline:
                break
            time.sleep(every)
        changes = list(answer.get("Changes") or [])
        token = answer.get("NextToken")
        while token:
            more = cfn.describe_change_set(ChangeSetName=change_set_id, NextToken=token)
            changes += more.get("Changes") or []
            token = more.get("NextToken")
    return {**answer, "Changes": changes}


def delete_change_set(region: str | None, change_set_id: str) -> None:
    with _calling("CloudFormation DeleteChangeSet", region, "cloudformation:DeleteChangeSet"):
        client("cloudformation", region).delete_change_set(ChangeSetName=change_set_id)


def _refused(exc: Any, action: str) -> DeployError | None:
    """A ClientError that is AWS refusing or failing the change itself (not credentials,
    permissions or throttling, which stay exit 4): exit 6."""
    code = error_code(exc)
    if code in CREDENTIAL_CODES or code in DENIED_CODES or code in THROTTLE_CODES:
        return None
    message = exc.response.get("Error", {}).get("Message", "")
    return DeployError(f"{action} failed: {code}: {message}" if message else f"{action} failed: {code}")


def execute_change_set(region: str | None, change_set_id: str) -> None:
    from botocore.exceptions import ClientError

    with _calling("CloudFormation ExecuteChangeSet", region, "cloudformation:ExecuteChangeSet"):
        try:
            client("cloudformation", region).execute_change_set(ChangeSetName=change_set_id)
        except ClientError as exc:
            raise (_refused(exc, "CloudFormation ExecuteChangeSet") or exc) from None


def delete_stack(region: str | None, name: str) -> None:
    from botocore.exceptions import ClientError

    with _calling(f"CloudFormation DeleteStack for {name!r}", region, "cloudformation:DeleteStack"):
        try:
            client("cloudformation", region).delete_stack(StackName=name)
        except ClientError as exc:
            raise (_refused(exc, f"CloudFormation DeleteStack for {name!r}") or exc) from None


def stack_events(region: str | None, stack_id: str) -> list[dict]:
    """The stack's events, oldest first ([] once the stack is gone)."""
    from botocore.exceptions import ClientError

    with _calling("CloudFormation DescribeStackEvents", region, "cloudformation:DescribeStackEvents"):
        try:
            pages = client("cloudformation", region).get_paginator("describe_stack_events").paginate(StackName=stack_id)
            events = [e for page in pages for e in page.get("StackEvents", [])]
        except ClientError as exc:
            if _missing_stack(exc):
                return []
            raise
    return list(reversed(events))


def wait_stack(region: str | None, stack_id: str, on_event: Callable[[dict], None], *, seen: set[str],
               timeout: float = 3600.0, every: float = 5.0) -> dict | None:
    """Follow the stack until no operation is in progress, passing each new event to
    `on_event`; its final description (None once it is deleted)."""
    from botocore.exceptions import ClientError

    deadline = time.monotonic() + timeout
    while True:
        for event in stack_events(region, stack_id):
            if event["EventId"] not in seen:
                seen.add(event["EventId"])
                on_event(event)
        with _calling("CloudFormation DescribeStacks", region, "cloudformation:DescribeStacks"):
            try:
                stacks = client("cloudformation", region).describe_stacks(StackName=stack_id).get("Stacks") or []
            except ClientError as exc:
                if _missing_stack(exc):
                    return None
                raise
        stack = stacks[0] if stacks else None
        if stack is None or not stack["StackStatus"].endswith("_IN_PROGRESS") or time.monotonic() > deadline:
            return stack
        time.sleep(every)


# -- RDS ----------------------------------------------------------------------------------

def db_instance(region: str | None, identifier: str) -> dict | None:
    from botocore.exceptions import ClientError

    with _calling(f"RDS DescribeDBInstances for {identifier!r}", region, "rds:DescribeDBInstances"):
        try:
            found = client("rds", region).describe_db_instances(DBInstanceIdentifier=identifier).get("DBInstances")
        except ClientError as exc:
            if error_code(exc) in ("DBInstanceNotFound", "DBInstanceNotFoundFault"):
                return None
            raise
    return found[0] if found else None


# -- the generated database password --------------------------------------------------------

def ssm_put_new(region: str | None, name: str, value: str) -> bool:
    """Store `value` as SecureString `name` unless the parameter exists. True when stored."""
    from botocore.exceptions import ClientError

    with _calling(f"SSM PutParameter for {name}", region, "ssm:PutParameter"):
        try:
            client("ssm", region).put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=False,
                                                Description="deployctl infra: database master password")
        except ClientError as exc:
            if error_code(exc) == "ParameterAlreadyExists":
                return False
            raise
    return True


def secretsmanager_put_key(region: str | None, secret_id: str, key: str, value: str) -> bool:
    """Add `key` to the secret's JSON object (creating the secret if absent) unless the key is
    already there. True when stored. Other keys are kept as they were."""
    from botocore.exceptions import ClientError

    with _calling(f"Secrets Manager PutSecretValue for {secret_id!r}", region,
                  "secretsmanager:GetSecretValue, PutSecretValue and CreateSecret"):
        sm = client("secretsmanager", region)
        try:
            text = sm.get_secret_value(SecretId=secret_id).get("SecretString") or "{}"
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
            sm.create_secret(Name=secret_id, SecretString=json.dumps({key: value}),
                             Description="deployctl: the environment's secrets")
            return True
        redactor.add(text)
        data = json.loads(text)
        if data.get(key):
            return False
        sm.put_secret_value(SecretId=secret_id, SecretString=json.dumps({**data, key: value}))
    return True
