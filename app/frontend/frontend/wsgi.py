"""The WSGI entry point gunicorn loads: `frontend.wsgi:app`."""

from .app import create_app

app = create_app()
