"""Helpers for deployctl's tests: free ports, private service processes, the machine's
services from ``scripts/testenv.sh up``. The session fixtures built on them live in
tests/conftest.py (see docs/TEAM-CONTRACT.md)."""
