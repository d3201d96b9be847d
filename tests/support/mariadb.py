"""The machine's MariaDB (started by scripts/testenv.sh up) and throwaway databases in it."""
from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field

from tests.support.engine import bridge_gateway, is_loopback


@dataclass
class MariaDB:
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    container_host: str  # the same server as seen from a container on the default bridge
    created: list[str] = field(default_factory=list)

    @classmethod
    def from_env(cls) -> MariaDB:
        """TEST_DATABASE_{HOST,PORT,USER,PASSWORD} with the contract's defaults; containers
        reach a server on this machine at the docker bridge gateway
        (TEST_DATABASE_CONTAINER_HOST overrides)."""
        host = os.environ.get("TEST_DATABASE_HOST", "127.0.0.1")
        container_host = os.environ.get("TEST_DATABASE_CONTAINER_HOST") or (
            bridge_gateway() if is_loopback(host) else host)
        return cls(host=host, port=int(os.environ.get("TEST_DATABASE_PORT", "3306")),
                   user=os.environ.get("TEST_DATABASE_USER", "deployctl"),
                   password=os.environ.get("TEST_DATABASE_PASSWORD", "deployctl-test"),
                   container_host=container_host)

    def connect(self, database: str | None = None, **kwargs):
        """A new ``pymysql`` connection as the test user (autocommit on)."""
        import pymysql  # lazily: pure unit tests do not pay for it

        options = dict(host=self.host, port=self.port, user=self.user, password=self.password,
                       database=database, connect_timeout=5, autocommit=True, charset="utf8mb4")
        options.update(kwargs)
        return pymysql.connect(**options)

    def create_database(self, prefix: str = "test") -> str:
        """Create an empty database named ``<prefix>_<random>`` and return its name; it is
        dropped at the end of the session."""
        clean = re.sub(r"[^A-Za-z0-9_]", "_", prefix)[:40] or "test"
        name = f"{clean}_{secrets.token_hex(6)}"
        with self.connect() as connection, connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        self.created.append(name)
        return name

    def drop_created(self) -> None:
        if not self.created:
            return
        with self.connect() as connection, connection.cursor() as cursor:
            for name in self.created:
                cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        self.created.clear()
