"""Pure planning: config + state -> what must happen. No I/O in this package."""
