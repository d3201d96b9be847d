"""Images as data: build and test argv, Dockerfile checks, image names."""
