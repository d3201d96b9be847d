"""The WSGI entry point gunicorn loads: `backend.wsgi:app`."""

from .app import create_app

app = create_app()
