"""mt-cli serve: the HTTP app and its micro-batcher."""
