"""The Swarm as data: a release's services, the global proxy, health checks, scale."""
