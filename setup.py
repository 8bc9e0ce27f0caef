"""Maps the repository's top-level folders onto the ``sagedock`` namespace.

Each folder (``toolkit/``, ``serving/`` ...) is one import package, ``sagedock.<folder>``;
metadata lives in ``pyproject.toml``. A setup.py is needed only because the list of
subpackages under a remapped folder cannot be discovered from pyproject.toml alone.
"""

from setuptools import find_packages, setup

PARTS = ("toolkit", "serving", "containers", "templates")

packages = [f"sagedock.{part}" for part in PARTS]
packages += [f"sagedock.{part}.{sub}" for part in PARTS for sub in find_packages(part)]

setup(
    package_dir={f"sagedock.{part}": part for part in PARTS},
    packages=packages,
    package_data={
        "sagedock.templates": ["**/*"],
        "": ["*.proto", "*.conf", "*.template", "py.typed"],
    },
    include_package_data=True,
)
