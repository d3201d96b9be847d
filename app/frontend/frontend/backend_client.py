"""The backend's JSON API, seen from the frontend: requests with timeouts."""

from __future__ import annotations

from urllib.parse import quote

import requests


class BackendUnavailable(Exception):
    """The backend did not answer usefully (down, slow, or a server error)."""


class BackendRejected(Exception):
    """The backend refused the request (4xx) with a message meant for people."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class BackendClient:
    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        session: requests.Session | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        # A Session reuses TCP connections; gunicorn's sync workers run one
        # request at a time, so sharing it within a worker is safe.
        self.session = session or requests.Session()

    def list_users(self, *, limit: int, offset: int) -> dict:
        return _json(self._request("GET", "/api/users", params={"limit": limit, "offset": offset}))

    def add_user(self, username: str) -> dict:
        return _json(self._request("POST", "/api/users", json={"username": username}))

    def delete_user(self, username: str) -> None:
        self._request("DELETE", f"/api/users/{quote(username, safe='')}")

    def generate_users(self, count: int) -> list[dict]:
        return _json(self._request("POST", "/api/users/generate", json={"count": count}))["users"]

    def version(self) -> dict:
        return _json(self._request("GET", "/version"))

    def _request(self, method: str, path: str, **kwargs) -> requests.Response:
        try:
            response = self.session.request(method, self.base_url + path, timeout=self.timeout, **kwargs)
        except requests.Timeout:
            raise BackendUnavailable(f"the backend did not answer within {self.timeout[1]:g} seconds") from None
        except requests.RequestException:
            raise BackendUnavailable("the backend cannot be reached") from None
        if response.status_code >= 500:
            raise BackendUnavailable(f"the backend failed with HTTP {response.status_code}")
        if response.status_code >= 400:
            raise BackendRejected(response.status_code, _error_message(response))
        return response


def _json(response: requests.Response):
    try:
        return response.json()
    except ValueError:
        raise BackendUnavailable("the backend answered with something other than JSON") from None


def _error_message(response: requests.Response) -> str:
    try:
        message = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return f"the backend refused the request (HTTP {response.status_code})"
    return str(message)
