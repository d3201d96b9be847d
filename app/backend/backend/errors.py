"""Every error leaves the API as JSON `{"error": "..."}`; tracebacks stay in the log."""

from __future__ import annotations

import pymysql
from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

# Headers of an HTTPException worth keeping on the JSON answer (405's Allow, 503's Retry-After).
_KEPT_HEADERS = ("Allow", "Retry-After")


class ApiError(Exception):
    """An expected failure with the status and message the client should see."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(code: int, message: str, **extra):
    response = jsonify(error=message, **extra)
    response.status_code = code
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.message)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        response = error_response(exc.code or 500, exc.description or exc.name)
        for name, value in exc.get_headers():
            if name in _KEPT_HEADERS:
                response.headers[name] = value
        return response

    @app.errorhandler(pymysql.err.OperationalError)
    @app.errorhandler(pymysql.err.InterfaceError)
    def _database_unavailable(exc):
        app.logger.warning("database unavailable: %s", exc)
        return error_response(503, "database unavailable, try again shortly")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        app.logger.exception("unhandled error")
        return error_response(500, "internal server error")
