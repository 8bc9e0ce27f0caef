"""sagedock's Docker images: the catalog, wheelhouses, the local Debian base, builds.

Shells out to the ``docker`` command line; nothing here imports a Docker SDK.
"""

from __future__ import annotations

from .catalog import CATALOG, DEBIAN_BASE, DEFAULT_PREFIX, ImageSpec, build_order, tags

__all__ = ["CATALOG", "DEBIAN_BASE", "DEFAULT_PREFIX", "ImageSpec", "build_order", "tags"]
