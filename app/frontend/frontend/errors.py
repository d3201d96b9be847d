"""Error pages: a person sees what went wrong in words, never a traceback."""

from __future__ import annotations

from flask import Flask, render_template
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from .backend_client import BackendUnavailable

_TITLES = {
    400: "Bad request",
    404: "Page not found",
    405: "Method not allowed",
    413: "Request too large",
    500: "Something went wrong",
    503: "Service unavailable",
}


def error_page(status: int, message: str, title: str | None = None, headers: dict | None = None):
    title = title or _TITLES.get(status, "Error")
    body = render_template("error.html", status=status, title=title, message=message)
    return body, status, headers or {}


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(BackendUnavailable)
    def _backend_unavailable(exc: BackendUnavailable):
        app.logger.warning("backend unavailable: %s", exc)
        return error_page(
            503,
            f"The user directory is temporarily unavailable: {exc}. Please try again in a moment.",
            headers={"Retry-After": "5"},
        )

    @app.errorhandler(CSRFError)
    def _csrf_error(exc: CSRFError):
        return error_page(
            400,
            "This form has expired or did not come from this site. Go back, reload the page and try again.",
            title="Form expired",
        )

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        return error_page(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        app.logger.exception("unhandled error")
        return error_page(500, "An unexpected error occurred. It has been logged; please try again.")
