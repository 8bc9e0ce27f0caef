"""The one place the sagedock version is written."""

__version__ = "0.1.0"
