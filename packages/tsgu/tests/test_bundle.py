"""The bundle and its packages agree on versions, as installed (works outside the tree too)."""

from __future__ import annotations

import importlib
import importlib.metadata as metadata

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

BUNDLE = "tsgu"


def _requirements(dist: str) -> list[Requirement]:
    return [Requirement(r) for r in metadata.requires(dist) or []]


def _tsgu_requirements(dist: str) -> list[Requirement]:
    return [r for r in _requirements(dist) if r.name.startswith("tsgu-") and r.marker is None]


BUNDLED = [r.name for r in _tsgu_requirements(BUNDLE)]


def test_the_bundle_holds_every_tsgu_package():
    assert "tsgu-core" in BUNDLED
    assert len(BUNDLED) >= 3


@pytest.mark.parametrize("requirement", _tsgu_requirements(BUNDLE), ids=str)
def test_the_bundles_ranges_admit_the_installed_packages(requirement):
    installed = Version(metadata.version(requirement.name))
    assert requirement.specifier.contains(installed, prereleases=True), (
        f"tsgu requires {requirement}, installed {requirement.name} {installed}"
    )


@pytest.mark.parametrize("dist", [d for d in BUNDLED if d != "tsgu-core"])
def test_each_satellites_core_range_admits_the_installed_core(dist):
    core = Version(metadata.version("tsgu-core"))
    ranges = [r for r in _tsgu_requirements(dist) if r.name == "tsgu-core"]
    assert ranges, f"{dist} does not declare tsgu-core"
    for requirement in ranges:
        assert requirement.specifier.contains(core, prereleases=True), (
            f"{dist} requires {requirement}, but tsgu-core {core} is installed"
        )


@pytest.mark.parametrize("dist", BUNDLED)
def test_each_package_imports_and_reports_its_version(dist):
    module = importlib.import_module(dist.replace("-", "."))
    assert module.__version__ == metadata.version(dist)


def test_tsgu_is_a_namespace_spanning_every_package():
    import tsgu

    assert getattr(tsgu, "__file__", None) is None
    assert len(list(tsgu.__path__)) >= 1
