"""The user directory's JSON API (Flask over MySQL/MariaDB)."""
