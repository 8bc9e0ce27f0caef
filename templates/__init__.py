"""Project templates rendered by ``sagedock init byoc|byos`` (package data only)."""
