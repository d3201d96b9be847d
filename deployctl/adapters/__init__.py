"""The only modules that talk to the outside world: docker, git, AWS (imported lazily)."""
