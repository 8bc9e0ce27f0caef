"""Streaming readers for the training data formats the built-in algorithms accept."""
