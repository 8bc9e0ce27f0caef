"""sagedock.serving: the model server behind ``serve`` (nginx -> gunicorn -> flask)."""
