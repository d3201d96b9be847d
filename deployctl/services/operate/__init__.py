"""Day two: commands in a release (exec), hooks around stages, scheduled jobs, removing an app."""
