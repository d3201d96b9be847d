"""The proxy at a host's edge: its configuration, the shared proxy of several apps, HTTPS certificates, maintenance mode."""
