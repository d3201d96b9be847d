"""The release as data: specs, names, the switch plan, steps, the rollout's pure policy."""
