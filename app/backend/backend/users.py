"""The users table: list, add, delete, generate. Parameterised SQL only."""

from __future__ import annotations

from datetime import datetime
from typing import Callable

import pymysql

from .db import is_duplicate_entry
from .usernames import random_username

# Attempts per generated name before giving up; with 9 million possible names
# even a table of a million users makes ten straight collisions vanishingly rare.
GENERATE_ATTEMPTS = 10


class UserExists(Exception):
    pass


class UserNotFound(Exception):
    pass


class GenerationFailed(Exception):
    pass


def _public(row: dict) -> dict:
    created: datetime = row["created_at"]
    return {"username": row["username"], "created_at": created.isoformat() + "Z"}


class UserDirectory:
    def __init__(self, conn: pymysql.connections.Connection):
        self._conn = conn

    def list(self, *, limit: int, offset: int) -> tuple[list[dict], int]:
        with self._conn.cursor() as cursor:
            cursor.execute(
                "SELECT username, created_at FROM users ORDER BY username LIMIT %s OFFSET %s",
                (limit, offset),
            )
            rows = cursor.fetchall()
            cursor.execute("SELECT COUNT(*) AS total FROM users")
            total = cursor.fetchone()["total"]
        return [_public(r) for r in rows], total

    def add(self, username: str) -> dict:
        with self._conn.cursor() as cursor:
            try:
                cursor.execute("INSERT INTO users (username) VALUES (%s)", (username,))
            except pymysql.err.IntegrityError as exc:
                if is_duplicate_entry(exc):
                    raise UserExists(username) from None
                raise
            cursor.execute("SELECT username, created_at FROM users WHERE id = %s", (cursor.lastrowid,))
            return _public(cursor.fetchone())

    def delete(self, username: str) -> None:
        with self._conn.cursor() as cursor:
            if cursor.execute("DELETE FROM users WHERE username = %s", (username,)) == 0:
                raise UserNotFound(username)

    def generate(self, count: int, make_name: Callable[[], str] | None = None) -> list[dict]:
        """Insert `count` new random usernames, all or none."""
        make_name = make_name or random_username
        ids = []
        self._conn.begin()
        try:
            with self._conn.cursor() as cursor:
                for _ in range(count):
                    ids.append(self._insert_random(cursor, make_name))
                # Only "%s" markers are formatted in; the ids travel as parameters.
                placeholders = ", ".join(["%s"] * len(ids))
                cursor.execute(
                    f"SELECT username, created_at FROM users WHERE id IN ({placeholders}) ORDER BY username",
                    ids,
                )
                rows = cursor.fetchall()
            self._conn.commit()
        except BaseException:
            self._conn.rollback()
            raise
        return [_public(r) for r in rows]

    @staticmethod
    def _insert_random(cursor, make_name: Callable[[], str]) -> int:
        for _ in range(GENERATE_ATTEMPTS):
            try:
                cursor.execute("INSERT INTO users (username) VALUES (%s)", (make_name(),))
            except pymysql.err.IntegrityError as exc:
                if is_duplicate_entry(exc):
                    # InnoDB undoes only the failed statement; the batch goes on.
                    continue
                raise
            return cursor.lastrowid
        raise GenerationFailed(f"no unused username after {GENERATE_ATTEMPTS} attempts")
