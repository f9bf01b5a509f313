"""Do the two environment files agree, and do they pin what labkit needs?"""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ]", req, maxsplit=1)[0].lower()


def _pyproject_requirements() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {_name(r): r.replace(" ", "") for r in data["project"]["dependencies"]}


def _conda_pip_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    return {_name(r): r.replace(" ", "") for r in pip_section if not r.startswith("-") and r != "."}


def test_same_requirements_in_both_files():
    """Does environment.yml's pip section name exactly pyproject.toml's requirements?"""
    assert _conda_pip_requirements() == _pyproject_requirements()


def test_conda_env_installs_labkit_as_a_package():
    """Does environment.yml install the checkout as a package, not editable (a shared server's
    students must not see the kit's solutions/ through an editable install)?"""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "." in pip_section
    assert not [r for r in pip_section if r.startswith("-e")], pip_section


def test_torch_pins_are_exact():
    """Are torch and torchvision pinned to the exact versions labkit is tested with?"""
    reqs = _pyproject_requirements()
    assert reqs["torch"] == "torch==2.14.1"
    assert reqs["torchvision"] == "torchvision==0.29.1"


def test_installed_versions_match_the_pins():
    """Is the running interpreter's torch the pinned one (not a stray newer release)?"""
    import torch
    import torchvision

    assert torch.__version__.split("+")[0] == "2.14.1"
    assert torchvision.__version__.split("+")[0] == "0.29.1"


def test_conda_env_python_is_311():
    """Does the conda environment ask for Python 3.11?"""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
