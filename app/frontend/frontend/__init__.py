"""The user directory's web UI: server-rendered pages over the backend's JSON API."""
