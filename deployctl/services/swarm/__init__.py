"""The Swarm site: the same transaction driven through a Swarm manager."""
