"""The proxy as text: nginx configuration, its containers, TLS snippets, certificates."""
