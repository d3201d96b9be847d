"""Day two as data: exec, hooks, jobs, host keys."""
