"""The AWS stand-in for these tests: one moto server per session (tests/support/moto_server.py),
and per test a process environment that points deployctl at it and at nothing real."""

from __future__ import annotations

import pytest

from tests.integration.aws.moto_state import REGION
from tests.support.moto_server import MotoServer, start_moto_server


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    """moto's server on a free loopback port: ``.endpoint``, ``.environ()``."""
    server = start_moto_server(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


@pytest.fixture
def aws(moto_server: MotoServer, monkeypatch) -> MotoServer:
    """This process talks to moto only. No region is set: deployctl must pass deploy.toml's."""
    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN", "AWS_MAX_ATTEMPTS",
                 "AWS_RETRY_MODE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in moto_server.environ().items():
        monkeypatch.setenv(name, value)
    return moto_server


@pytest.fixture
def boto(aws):
    """A boto3 client factory for arranging moto's state (the code under test uses its own)."""
    import boto3

    def make(service: str, region: str = REGION):
        return boto3.client(service, region_name=region, endpoint_url=aws.endpoint)

    return make
