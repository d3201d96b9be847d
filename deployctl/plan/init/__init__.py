"""`deployctl init`: a compose file read into a deploy.toml and Dockerfiles."""
