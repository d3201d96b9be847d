"""Ordered SQL migrations: NNNN_description.sql, applied by `python -m backend.migrate`."""
