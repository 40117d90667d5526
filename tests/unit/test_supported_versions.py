"""pyproject.toml says exactly which Django and Python versions CI tests (.ci/run)."""

import re
import tomllib
from pathlib import Path

from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
CI = (ROOT / ".ci" / "run").read_text()


def _classified(prefix: str) -> set[str]:
    return {c.removeprefix(prefix) for c in PROJECT["classifiers"] if re.fullmatch(re.escape(prefix) + r"\d+\.\d+", c)}


def _django_range(requirements: str) -> SpecifierSet:
    lines = (ROOT / "requirements" / requirements).read_text().splitlines()
    return SpecifierSet(next(line.split("#")[0].strip().removeprefix("Django") for line in lines
                             if line.startswith("Django")))


def test_each_django_classifier_has_a_ci_pass_and_the_range_holds_no_other():
    tested = {"5.2": "django52.txt", "6.0": "django60.txt", "6.1": "base.txt"}
    assert _classified("Framework :: Django :: ") == set(tested)
    declared = SpecifierSet(next(d for d in PROJECT["dependencies"] if d.startswith("Django")).split("#")[0]
                            .removeprefix("Django"))
    for version, requirements in tested.items():
        assert f"{version}.0" in declared
        assert f"requirements/{requirements}" in CI or requirements == "base.txt"  # dev.txt includes base.txt
        newest = max(v for v in ("5.2.99", "6.0.99", "6.1.99") if v in _django_range(requirements))
        assert newest.startswith(version)  # the pass installs that version, not a newer one
    assert not any(f"{v}.0" in declared for v in ("5.1", "6.2", "7.0"))


def test_each_python_classifier_has_a_ci_pass_and_requires_python_holds_no_other():
    tested = _classified("Programming Language :: Python :: ")
    assert tested == {"3.12", "3.13"}
    requires = SpecifierSet(PROJECT["requires-python"])
    assert all(f"{v}.0" in requires for v in tested)
    assert not any(f"{v}.0" in requires for v in ("3.11", "3.14"))
    assert "find_python 3.12" in CI and "find_python 3.13" in CI
