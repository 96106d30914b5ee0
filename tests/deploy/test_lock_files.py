"""The lock files pin, with hashes, every requirement pyproject.toml names, within its range, and
the image's lock takes the same versions as the one the tests run on."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parents[2]
TEST_LOCK = ROOT / "requirements.lock"
IMAGE_LOCK = ROOT / "deploy" / "requirements.lock"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def pins(lock: Path) -> dict[str, set[str]]:
    """Each package's pinned versions (two where a marker splits them by Python version)."""
    found: dict[str, set[str]] = {}
    for line in lock.read_text().splitlines():
        match = PIN.match(line)
        if match:
            found.setdefault(canonicalize_name(match[1]), set()).add(match[2])
    return found


def pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def requirements(*, with_tests: bool) -> list[Requirement]:
    project = pyproject()["project"]
    build = pyproject()["build-system"]
    assert isinstance(project, dict) and isinstance(build, dict)
    names = [*project["dependencies"], *build["requires"]]
    if with_tests:
        names += project["optional-dependencies"]["test"]
    return [Requirement(name) for name in names]


@pytest.mark.parametrize(
    ("lock", "with_tests"), [(TEST_LOCK, True), (IMAGE_LOCK, False)], ids=["test", "image"]
)
def test_every_requirement_is_pinned_within_its_range(lock: Path, with_tests: bool) -> None:
    pinned = pins(lock)
    for requirement in requirements(with_tests=with_tests):
        versions = pinned.get(canonicalize_name(requirement.name))
        assert versions, f"{requirement.name} is not in {lock.name}: run `make lock`"
        for version in versions:
            assert requirement.specifier.contains(version, prereleases=True), (
                f"{requirement.name}=={version} in {lock.name} is outside {requirement}: "
                "run `make lock`"
            )


@pytest.mark.parametrize("lock", [TEST_LOCK, IMAGE_LOCK], ids=["test", "image"])
def test_every_pin_carries_its_hashes(lock: Path) -> None:
    entries = re.split(r"\n(?=[A-Za-z0-9])", lock.read_text().split("\n", 2)[2])
    unhashed = [entry.split()[0] for entry in entries if PIN.match(entry) and "--hash" not in entry]
    assert pins(lock) and not unhashed


def test_the_image_takes_the_tested_versions() -> None:
    tested = pins(TEST_LOCK)
    image = pins(IMAGE_LOCK)
    assert set(image) < set(tested)
    assert {name: image[name] for name in image} == {name: tested[name] for name in image}
    # Test tools, and the dev extra's in-process Redis, stay out of the image.
    assert not {"pytest", "mypy", "uv", "fakeredis"} & set(image)
