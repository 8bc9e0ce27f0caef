from __future__ import annotations

from sagedock.toolkit.images.bootstrap import AptSources, parse_apt_sources, sources_list

DEB822 = """\
Types: deb
# a comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


def test_deb822_sources_give_the_main_and_security_archives() -> None:
    found = parse_apt_sources([DEB822])
    assert found == AptSources(
        mirror="http://mirror.example/debian", security="http://mirror.example/debian-security"
    )


def test_one_line_sources_with_options_are_understood() -> None:
    text = "deb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main\n"
    found = parse_apt_sources([text])
    assert found.mirror == "http://m.example/debian"
    # no security line given: derived from a .../debian mirror
    assert found.security == "http://m.example/debian-security"


def test_sources_for_other_suites_are_ignored() -> None:
    text = "deb http://m.example/ubuntu jammy main\ndeb-src http://m.example/debian bookworm main\n"
    assert parse_apt_sources([text]) == AptSources(mirror=None, security=None)


def test_image_sources_list_names_main_updates_and_security() -> None:
    text = sources_list(AptSources("http://m/debian", "http://m/debian-security"))
    assert text.splitlines() == [
        "deb http://m/debian bookworm main",
        "deb http://m/debian bookworm-updates main",
        "deb http://m/debian-security bookworm-security main",
    ]
