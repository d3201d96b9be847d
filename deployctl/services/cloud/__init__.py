"""AWS: the infrastructure stack and the discovery of its hosts."""
