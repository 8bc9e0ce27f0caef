"""The toolkit's own CLI subcommands (``train``, ``demo``), one module each (see ``cli.py``)."""
