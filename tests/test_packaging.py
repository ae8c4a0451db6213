"""The declared dependency ranges are ones CI runs: each lower bound in pyproject.toml is pinned in .ci/minimums.txt
(which .ci/run installs with pip's --constraint and runs this suite against), and the versions this suite runs with
lie inside the declared ranges."""

import importlib.metadata
import re
import tomllib

from conftest import ROOT
from packaging.requirements import Requirement
from packaging.version import Version


def declared() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(r) for r in project["dependencies"]]
    requirements += [Requirement(r) for extra in ("torch", "test") for r in project["optional-dependencies"][extra]]
    return {r.name: r for r in requirements}


def pinned() -> dict[str, str]:
    lines = (ROOT / ".ci" / "minimums.txt").read_text().splitlines()
    return dict(re.fullmatch(r"([\w.-]+)==([\w.]+)", line).groups() for line in lines if line and line[0] != "#")


def lower_bound(requirement: Requirement) -> str | None:
    bounds = [s.version for s in requirement.specifier if s.operator == ">="]
    return bounds[0] if bounds else None


def test_every_lower_bound_is_pinned_in_the_minimums():
    pins = pinned()
    for name, requirement in declared().items():
        bound = lower_bound(requirement)
        assert bound is not None, f"{name} has no lower bound"
        assert name in pins, f"{name}>={bound} is not run by CI (.ci/minimums.txt)"
        assert Version(pins[name]) == Version(bound), (name, pins[name], bound)


def test_the_pins_satisfy_the_declared_ranges():
    ranges = declared()
    for name, version in pinned().items():
        if name in ranges:
            assert ranges[name].specifier.contains(version), (name, version, str(ranges[name].specifier))


def test_this_environment_is_inside_the_declared_ranges():
    for name, requirement in declared().items():
        installed = importlib.metadata.version(name).split("+")[0]
        assert requirement.specifier.contains(installed), (name, installed, str(requirement.specifier))
