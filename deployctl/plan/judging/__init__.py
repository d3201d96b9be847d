"""The judges' pure parts: access-log parsing, canary and shadow verdicts."""
