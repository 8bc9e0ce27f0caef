from __future__ import annotations

import py_compile
from pathlib import Path

import pytest

from sagedock.templates.command import FRAMEWORKS, render, substitute
from sagedock.toolkit.errors import UserError

KINDS = [("byoc", None)] + [("byos", fw) for fw in sorted(FRAMEWORKS)]


@pytest.mark.parametrize(("kind", "framework"), KINDS)
def test_every_template_renders_a_complete_project(
    kind: str, framework: str | None, tmp_path: Path
) -> None:
    dest = tmp_path / "proj"
    written = render(kind, dest, name="my-proj", framework=framework)
    names = {str(p.relative_to(dest)) for p in written}
    expected = {"train.py", "inference.py", "project_io.py", "requirements.txt", "README.md"}
    expected |= {"data/train/train.csv", "data/validation/validation.csv"}
    if kind == "byoc" or framework == "sklearn":  # no sagedock image has sklearn
        expected.add("Dockerfile")
    assert names == expected
    for path in written:
        assert "{{" not in path.read_text(), path
    for script in ("train.py", "inference.py", "project_io.py"):
        py_compile.compile(str(dest / script), doraise=True)
    assert "my-proj" in (dest / "README.md").read_text()


def test_byoc_dockerfile_starts_from_the_chosen_base(tmp_path: Path) -> None:
    render("byoc", tmp_path / "p", name="p", base_image="registry.example/sagedock/base:0.1.0")
    text = (tmp_path / "p" / "Dockerfile").read_text()
    assert text.splitlines()[2] == "FROM registry.example/sagedock/base:0.1.0"
    assert "SAGEMAKER_PROGRAM=train.py" in text


def test_byos_readme_names_the_framework_image(tmp_path: Path) -> None:
    render("byos", tmp_path / "p", name="p", framework="xgboost")
    text = (tmp_path / "p" / "README.md").read_text()
    assert "--docker --image sagedock/xgboost:latest" in text
    assert "--hp num-round=50" in text


@pytest.mark.parametrize("name", ["Bad", "-x", "x-", "a_b", "", "a" * 64])
def test_names_that_cannot_name_a_job_are_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="project name"):
        render("byoc", tmp_path / "p", name=name)


def test_a_non_empty_destination_is_left_untouched(tmp_path: Path) -> None:
    dest = tmp_path / "p"
    dest.mkdir()
    (dest / "mine.txt").write_text("keep")
    with pytest.raises(UserError, match="not empty"):
        render("byos", dest, name="p", framework="pytorch")
    assert [p.name for p in dest.iterdir()] == ["mine.txt"]


def test_unknown_framework_and_placeholder_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown framework 'jax'"):
        render("byos", tmp_path / "p", name="p", framework="jax")
    with pytest.raises(UserError, match=r"\{\{nope\}\}"):
        substitute("x {{nope}} y", {"project": "p"})
