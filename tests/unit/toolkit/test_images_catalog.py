from __future__ import annotations

from pathlib import Path

import pytest

from sagedock.toolkit.errors import UserError
from sagedock.toolkit.images import catalog
from sagedock.toolkit.images.catalog import CATALOG, build_order, tags

REPO = Path(__file__).resolve().parents[3]


def test_every_catalog_image_has_a_dockerfile() -> None:
    for name in CATALOG:
        assert (REPO / "Dockerfiles" / name / "Dockerfile").is_file(), name


def test_build_order_puts_parents_first_and_adds_missing_parents() -> None:
    assert catalog.names(build_order(["xgboost"])) == ["base", "xgboost"]
    order = catalog.names(build_order())
    for spec in CATALOG.values():
        if spec.parent:
            assert order.index(spec.parent) < order.index(spec.name)


def test_build_order_of_a_standalone_image_is_that_image_alone() -> None:
    assert catalog.names(build_order(["mxnet"])) == ["mxnet"]


def test_unknown_image_name_is_a_user_error_listing_known_names() -> None:
    with pytest.raises(UserError, match=r"unknown image 'nope'.*base"):
        build_order(["nope"])


def test_tags_are_versioned_and_latest_under_the_prefix() -> None:
    assert tags("base", "1.2.3") == ("sagedock/base:1.2.3", "sagedock/base:latest")
    assert tags("xgboost", "1.0", "registry.example:5000/team/") == (
        "registry.example:5000/team/xgboost:1.0",
        "registry.example:5000/team/xgboost:latest",
    )


def test_requirement_lines_pin_sagedock_with_its_extras() -> None:
    lines = CATALOG["pytorch"].requirement_lines("0.9")
    assert lines[0] == "sagedock[s3,torch]==0.9"
    assert "torch==2.13.0+cpu" in lines


def test_base_dockerfile_carries_the_sagemaker_labels_and_exec_entrypoint() -> None:
    text = (REPO / "Dockerfiles" / "base" / "Dockerfile").read_text()
    assert "com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true" in text
    assert "com.amazonaws.sagemaker.capabilities.multi-models=true" in text
    assert 'ENTRYPOINT ["/usr/local/bin/sagedock-entrypoint"]' in text
    assert text.lstrip("# \n").count("FROM ${BASE_IMAGE}") >= 1
