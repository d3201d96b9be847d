"""AWS through boto3 (imported lazily). `DEPLOYCTL_AWS_ENDPOINT_URL` points every client at
another endpoint (moto's server in tests, a VPC endpoint in production).

Every call goes through `_calling`, which turns botocore's exceptions into ConnectError
(exit 4: no credentials, rejected credentials, access denied, throttled after retries,
unreachable) or ConfigError (exit 3: no region), naming the action and the region. Retries
use botocore's "standard" mode (exponential backoff with jitter, throttling included);
AWS_RETRY_MODE and AWS_MAX_ATTEMPTS still apply, as for any AWS tool.
"""

from __future__ import annotations

import base64
import contextlib
import os
from typing import Any, Iterator, Sequence

from ..errors import ConfigError, ConnectError
from ..plan.cloud.aws import Instance
from ..secrets import Secret, redactor

ENDPOINT_ENV = "DEPLOYCTL_AWS_ENDPOINT_URL"
SSM_BATCH = 10  # GetParameters takes at most 10 names

CREDENTIAL_CODES = {"UnrecognizedClientException", "InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException",
                    "AuthFailure", "SignatureDoesNotMatch", "InvalidSignatureException", "IncompleteSignature",
                    "MissingAuthenticationToken", "RequestExpired"}
DENIED_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess",
                "KMSAccessDeniedException"}
THROTTLE_CODES = {"Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded",
                  "TooManyRequestsException", "RequestThrottled", "RequestThrottledException", "SlowDown",
                  "ProvisionedThroughputExceededException"}
CREDENTIALS_HINT = "set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or use an instance role"


def client(service: str, region: str | None) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": os.environ.get("AWS_RETRY_MODE") or "standard"},
                    connect_timeout=5, read_timeout=30)
    return boto3.client(service, region_name=region, endpoint_url=os.environ.get(ENDPOINT_ENV) or None,
                        config=config)


def _region_name(region: str | None) -> str:
    return region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "the default region"


@contextlib.contextmanager
def _calling(action: str, region: str | None, permission: str) -> Iterator[None]:
    """`action` reads as "what we were doing" ("SSM GetParameters for /app/prod/"); it names
    paths and ids, never values."""
    from botocore.exceptions import BotoCoreError, ClientError, CredentialRetrievalError, HTTPClientError
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import NoCredentialsError, NoRegionError, PartialCredentialsError

    where = _region_name(region)
    try:
        yield
    except (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError):
        raise ConnectError(f"no AWS credentials for {action} in {where}", hint=CREDENTIALS_HINT) from None
    except NoRegionError:
        raise ConfigError([f"no AWS region for {action}"],
                          hint="set aws_region in the environment of deploy.toml, or AWS_REGION") from None
    except ClientError as exc:
        raise client_error(exc, action, where, permission) from None
    except (BotoConnectionError, HTTPClientError) as exc:  # refused, reset, timed out, TLS
        raise ConnectError(f"cannot reach AWS for {action} in {where}: {exc}",
                           hint=f"check the network, and that {where} is the right region") from None
    except BotoCoreError as exc:
        raise ConnectError(f"{action} in {where} failed: {exc}") from None


def client_error(exc: Any, action: str, where: str, permission: str) -> ConnectError:
    """One ClientError as a ConnectError whose first words say what went wrong."""
    error = exc.response.get("Error", {})
    code, message = error.get("Code", "?"), error.get("Message", "")
    detail = f"{code}: {message}" if message else code
    if code in CREDENTIAL_CODES:
        return ConnectError(f"AWS rejected the credentials for {action} in {where}: {detail}", hint=CREDENTIALS_HINT)
    if code in DENIED_CODES:
        return ConnectError(f"access denied: {action} in {where}: {detail}",
                            hint=f"the AWS identity needs {permission}")
    if code in THROTTLE_CODES:
        attempts = exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
        return ConnectError(f"AWS throttled {action} in {where} ({attempts} attempts): {detail}",
                            hint="retry later, or raise AWS_MAX_ATTEMPTS")
    return ConnectError(f"{action} in {where} failed: {detail}")


def error_code(exc: Any) -> str:
    return exc.response.get("Error", {}).get("Code", "")


# -- ECR -----------------------------------------------------------------------------------

def ecr_login(region: str) -> tuple[str, Secret]:
    """(username, password) for `docker login` to ECR, from GetAuthorizationToken.

    The token is valid for 12 hours and registered with the redactor before anything
    else can see it."""
    with _calling("ECR GetAuthorizationToken", region, "ecr:GetAuthorizationToken"):
        data = client("ecr", region).get_authorization_token().get("authorizationData") or []
    if not data or not data[0].get("authorizationToken"):
        raise ConnectError(f"ECR in {region} answered GetAuthorizationToken without a token")
    token = data[0]["authorizationToken"]
    redactor.add(token)
    username, _, password = base64.b64decode(token).decode().partition(":")
    secret = Secret(password)
    redactor.add(secret)
    return username, secret


# -- EC2 -----------------------------------------------------------------------------------

def describe_instances(region: str | None, filters: list[dict]) -> list[Instance]:
    """Every instance matching `filters`, whatever its state, across all result pages."""
    out = []
    with _calling("EC2 DescribeInstances", region, "ec2:DescribeInstances"):
        pages = client("ec2", region).get_paginator("describe_instances").paginate(Filters=filters)
        for page in pages:
            for reservation in page.get("Reservations", []):
                for data in reservation.get("Instances", []):
                    out.append(Instance(
                        id=data["InstanceId"], state=data.get("State", {}).get("Name", "unknown"),
                        private_ip=data.get("PrivateIpAddress"), public_ip=data.get("PublicIpAddress"),
                        tags={t["Key"]: t.get("Value", "") for t in data.get("Tags", [])},
                    ))
    return out


# -- secrets -------------------------------------------------------------------------------

def console_output(region: str | None, instance_id: str) -> str:
    """The instance's serial console output (what cloud-init printed at boot), as text; ""
    when EC2 has none yet. EC2 answers base64; botocore decodes it (decode_console_output)."""
    with _calling(f"EC2 GetConsoleOutput for {instance_id}", region, "ec2:GetConsoleOutput"):
        answer = client("ec2", region).get_console_output(InstanceId=instance_id)
    return answer.get("Output") or ""


def ssm_parameters(region: str | None, names: Sequence[str]) -> dict[str, str | None]:
    """Each parameter's decrypted value (SecureString included), or None where it does not exist."""
    out: dict[str, str | None] = {name: None for name in names}
    if not names:
        return out
    with _calling(f"SSM GetParameters for {', '.join(names)}", region, "ssm:GetParameters (and kms:Decrypt)"):
        ssm = client("ssm", region)
        for start in range(0, len(names), SSM_BATCH):
            answer = ssm.get_parameters(Names=list(names[start:start + SSM_BATCH]), WithDecryption=True)
            for parameter in answer.get("Parameters", []):
                redactor.add(parameter["Value"])
                out[parameter["Name"]] = parameter["Value"]
    return out


def secret_string(region: str | None, secret_id: str) -> str | None:
    """The SecretString of a Secrets Manager secret, or None when there is no such secret."""
    from botocore.exceptions import ClientError

    action = f"Secrets Manager GetSecretValue for {secret_id!r}"
    with _calling(action, region, "secretsmanager:GetSecretValue (and kms:Decrypt)"):
        try:
            answer = client("secretsmanager", region).get_secret_value(SecretId=secret_id)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise
    if "SecretString" not in answer:
        raise ConfigError([f"Secrets Manager secret {secret_id!r} holds binary data, not a JSON object"])
    redactor.add(answer["SecretString"])
    return answer["SecretString"]


# -- RDS -----------------------------------------------------------------------------------

def db_instance_endpoint(region: str | None, instance_id: str) -> tuple[str | None, int | None, str] | None:
    """(address, port, status) of an RDS DB instance, or None when there is no such instance.
    An instance still being created has no endpoint yet: address and port are then None."""
    from botocore.exceptions import ClientError

    with _calling(f"RDS DescribeDBInstances for {instance_id!r}", region, "rds:DescribeDBInstances"):
        try:
            answer = client("rds", region).describe_db_instances(DBInstanceIdentifier=instance_id)
        except ClientError as exc:
            if error_code(exc) in ("DBInstanceNotFound", "DBInstanceNotFoundFault"):
                return None
            raise
    instances = answer.get("DBInstances") or []
    if not instances:
        return None
    endpoint = instances[0].get("Endpoint") or {}
    return endpoint.get("Address"), endpoint.get("Port"), instances[0].get("DBInstanceStatus", "unknown")
