"""Images: build, test inside them, push by digest."""
