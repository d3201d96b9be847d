"""AWS through boto3 (imported lazily). `DEPLOYCTL_AWS_ENDPOINT_URL` points every client at
another endpoint (moto's server in tests, a VPC endpoint in production)."""

from __future__ import annotations

import base64
import os
from typing import Any

from ..errors import ConnectError
from ..secrets import Secret, redactor

ENDPOINT_ENV = "DEPLOYCTL_AWS_ENDPOINT_URL"


def client(service: str, region: str | None) -> Any:
    import boto3

    return boto3.client(service, region_name=region, endpoint_url=os.environ.get(ENDPOINT_ENV) or None)


def ecr_login(region: str) -> tuple[str, Secret]:
    """(username, password) for `docker login` to ECR, from GetAuthorizationToken.

    The token is valid for 12 hours and registered with the redactor before anything
    else can see it."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        data = client("ecr", region).get_authorization_token()["authorizationData"][0]
    except NoCredentialsError:
        raise ConnectError("no AWS credentials for ECR",
                           hint="set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or use an instance role") from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise ConnectError(f"ECR refused GetAuthorizationToken in {region}: {error.get('Code')}: {error.get('Message')}",
                           hint="the AWS identity needs ecr:GetAuthorizationToken") from None
    except BotoCoreError as exc:
        raise ConnectError(f"cannot reach ECR in {region}: {exc}") from None
    except (KeyError, IndexError):
        raise ConnectError(f"ECR in {region} answered GetAuthorizationToken without a token") from None
    token = data["authorizationToken"]
    redactor.add(token)
    username, _, password = base64.b64decode(token).decode().partition(":")
    secret = Secret(password)
    redactor.add(secret)
    return username, secret
