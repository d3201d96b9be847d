"""The lifecycle services: they orchestrate steps through ports, emit events, never print."""
