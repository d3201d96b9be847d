"""Accessories (databases, caches) beside an app: boot, backups, schema checks."""
