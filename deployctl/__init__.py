"""deployctl: build, test, push, deploy and roll back a containerised app."""

__version__ = "0.1.0"
