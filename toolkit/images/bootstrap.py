"""Make the Debian base image locally when no registry can provide it.

Our Dockerfiles start ``FROM debian:bookworm-slim``. With a registry that is a pull; without
one, :func:`bootstrap_base` runs ``debootstrap --variant=minbase bookworm``, trims the tree the
way the slim image is trimmed (no docs, man pages, locales, apt lists or caches; dpkg told to
keep it so), and ``docker import``\\ s it under the same name, so the Dockerfiles build
unchanged on both kinds of machine. The root file system tarball is cached, so a second
bootstrap on the same machine is only an import.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import PlatformError
from . import docker
from .catalog import DEBIAN_BASE

SUITE = "bookworm"

#: dpkg keeps these out of every later ``apt-get install`` (as in Debian's slim images).
DPKG_EXCLUDES = """\
# Written by sagedock images bootstrap-base: keep the image slim, like debian:*-slim.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
"""

_APT_PURGE = "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb"
APT_CLEAN = f"""\
// Written by sagedock images bootstrap-base: no package caches left in image layers.
DPkg::Post-Invoke {{ "{_APT_PURGE} /var/cache/apt/*.bin || true"; }};
APT::Update::Post-Invoke {{ "{_APT_PURGE} /var/cache/apt/*.bin || true"; }};
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
Acquire::GzipIndexes "true";
"""

# Services must not start while images install packages (there is no init in a build).
POLICY_RC_D = (
    "#!/bin/sh\n# Written by sagedock images bootstrap-base: no service starts in a build.\n"
    "exit 101\n"
)

IMAGE_CHANGES = (
    'CMD ["bash"]',
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LABEL org.sagedock.base.origin=debootstrap-minbase",
)

_TRIM_GLOBS = (
    "usr/share/man/*",
    "usr/share/groff/*",
    "usr/share/info/*",
    "usr/share/locale/*",
    "usr/share/lintian/*",
    "usr/share/linda/*",
    "var/lib/apt/lists/*",
    "var/cache/apt/*.bin",
    "var/cache/apt/archives/*.deb",
    "var/cache/debconf/*-old",
    "var/log/*.log",
    "var/log/apt/*",
    "tmp/*",
)


@dataclass(frozen=True)
class AptSources:
    """Where the host's apt finds Debian: the main archive and the security archive."""

    mirror: str | None
    security: str | None


def parse_apt_sources(texts: list[str], suite: str = SUITE) -> AptSources:
    """The archive URIs serving *suite* and *suite*-security in one-line or deb822 sources.

    Pure: *texts* are the contents of ``sources.list`` and ``sources.list.d/*``.
    """
    entries: list[tuple[str, list[str]]] = []
    for text in texts:
        # deb822 stanzas
        for stanza in re.split(r"\n\s*\n", text):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
            if "deb" in fields.get("types", "").split() and "uris" in fields:
                for uri in fields["uris"].split():
                    entries.append((uri, fields.get("suites", "").split()))
        # one-line format
        for line in text.splitlines():
            words = line.split("#", 1)[0].split()
            if len(words) >= 3 and words[0] == "deb":
                rest = words[1:]
                if rest[0].startswith("["):  # options like [arch=amd64 signed-by=...]
                    while rest and not rest[0].endswith("]"):
                        rest = rest[1:]
                    rest = rest[1:]
                if len(rest) >= 2:
                    entries.append((rest[0], [rest[1]]))
    mirror = next((uri for uri, suites in entries if suite in suites), None)
    security = next((uri for uri, suites in entries if f"{suite}-security" in suites), None)
    if security is None and mirror is not None and mirror.rstrip("/").endswith("/debian"):
        security = mirror.rstrip("/") + "-security"
    return AptSources(mirror=mirror, security=security)


def host_apt_sources() -> AptSources:
    """:func:`parse_apt_sources` over this machine's apt configuration."""
    texts = []
    main = Path("/etc/apt/sources.list")
    if main.is_file():
        texts.append(main.read_text(errors="replace"))
    listdir = Path("/etc/apt/sources.list.d")
    if listdir.is_dir():
        for path in sorted(listdir.iterdir()):
            if path.suffix in (".list", ".sources"):
                texts.append(path.read_text(errors="replace"))
    return parse_apt_sources(texts)


def sources_list(sources: AptSources, suite: str = SUITE) -> str:
    """The image's ``/etc/apt/sources.list``: main, updates and security of *suite*."""
    lines = [f"deb {sources.mirror} {suite} main", f"deb {sources.mirror} {suite}-updates main"]
    if sources.security:
        lines.append(f"deb {sources.security} {suite}-security main")
    return "\n".join(lines) + "\n"


def debian_arch() -> str:
    """Debian's name for this machine's architecture (amd64, arm64, ...)."""
    dpkg = shutil.which("dpkg")
    if dpkg:
        out = subprocess.run([dpkg, "--print-architecture"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def rootfs_tarball_path(cache: Path, arch: str | None = None) -> Path:
    """Where the cached root file system tarball lives."""
    return cache / f"debian-{SUITE}-minbase-{arch or debian_arch()}.tar"


def _trim(rootfs: Path, sources: AptSources) -> None:
    for pattern in _TRIM_GLOBS:
        for path in rootfs.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    docs = rootfs / "usr/share/doc"
    if docs.is_dir():
        for entry in docs.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                for item in entry.iterdir():
                    if item.name != "copyright":
                        shutil.rmtree(item) if item.is_dir() else item.unlink()
    (rootfs / "etc/dpkg/dpkg.cfg.d").mkdir(parents=True, exist_ok=True)
    (rootfs / "etc/dpkg/dpkg.cfg.d/sagedock-slim").write_text(DPKG_EXCLUDES)
    (rootfs / "etc/apt/apt.conf.d/sagedock-clean").write_text(APT_CLEAN)
    policy = rootfs / "usr/sbin/policy-rc.d"
    policy.write_text(POLICY_RC_D)
    policy.chmod(0o755)
    if sources.mirror:
        (rootfs / "etc/apt/sources.list").write_text(sources_list(sources))
    # Docker provides these at run time; the host's copies must not leak into the image.
    for name in ("etc/resolv.conf", "etc/hostname", "etc/machine-id"):
        path = rootfs / name
        if path.exists() or path.is_symlink():
            path.unlink()
            path.write_text("")


def make_rootfs_tarball(
    tarball: Path, *, arch: str | None = None, log: Callable[[str], None] = print
) -> Path:
    """debootstrap a trimmed bookworm minbase into *tarball* (written atomically)."""
    if os.geteuid() != 0:
        raise PlatformError("debootstrap needs root: run `sudo sagedock images bootstrap-base`")
    debootstrap = shutil.which("debootstrap")
    if not debootstrap:
        raise PlatformError(
            "debootstrap is not installed (apt-get install debootstrap), and "
            f"{DEBIAN_BASE} could not be pulled"
        )
    arch = arch or debian_arch()
    sources = host_apt_sources()
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rootfs-", dir=tarball.parent) as tmp:
        rootfs = Path(tmp) / "rootfs"
        cmd = [debootstrap, "--variant=minbase", f"--arch={arch}", SUITE, str(rootfs)]
        if sources.mirror:
            cmd.append(sources.mirror)
        log(f"bootstrap-base: {' '.join(cmd[1:])}")
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-5:])
            raise PlatformError(f"debootstrap failed (exit {done.returncode}): {tail}")
        _trim(rootfs, sources)
        partial = tarball.with_suffix(".tar.partial")
        done = subprocess.run(
            ["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", str(partial), "."],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            partial.unlink(missing_ok=True)
            raise PlatformError(f"tar of the root file system failed: {done.stderr.strip()}")
        partial.replace(tarball)
    return tarball


def bootstrap_base(
    cache: Path,
    *,
    ref: str = DEBIAN_BASE,
    try_pull: bool = True,
    log: Callable[[str], None] = print,
) -> str:
    """Make sure the engine has *ref*; returns how: ``present``, ``pulled`` or ``bootstrapped``.

    Order: an image already there; a ``docker pull`` (when *try_pull*); the cached tarball;
    a fresh debootstrap (cached for next time).
    """
    if docker.image_exists(ref):
        log(f"bootstrap-base: {ref} is present")
        return "present"
    if try_pull:
        reason = docker.pull(ref)
        if reason is None:
            log(f"bootstrap-base: pulled {ref}")
            return "pulled"
        log(f"bootstrap-base: cannot pull {ref} ({reason}); making it with debootstrap")
    tarball = rootfs_tarball_path(cache)
    if tarball.is_file():
        log(f"bootstrap-base: using the cached root file system {tarball.name}")
    else:
        make_rootfs_tarball(tarball, log=log)
    docker.import_tarball(tarball, ref, IMAGE_CHANGES)
    log(f"bootstrap-base: imported {ref} ({docker.inspect(ref).size / 1e6:.0f} MB)")
    return "bootstrapped"
