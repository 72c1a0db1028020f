"""pyproject.toml and environment.yml name the same packages with the same version ranges."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"python-duckdb": "duckdb", "psycopg2": "psycopg2-binary", "matplotlib-base": "matplotlib"}  # conda-forge name -> PyPI name


def _split(spec: str) -> tuple[str, str]:
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", spec)
    return match.group(1).lower(), match.group(2).replace(" ", "")


def _pyproject() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + project["optional-dependencies"]["test"]
    return dict(_split(s) for s in specs)


def _environment() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    found = {}
    for entry in env["dependencies"]:
        specs = entry["pip"] if isinstance(entry, dict) else [entry]
        for spec in specs:
            if spec.startswith("-e") or spec.split("=")[0] in ("python", "pip"):
                continue
            name, version = _split(spec)
            found[CONDA_NAMES.get(name, name)] = version
    return found


def test_environment_yml_matches_pyproject():
    assert _environment() == _pyproject()


def test_environment_pins_python_311_and_installs_the_package_with_tests():
    text = (ROOT / "environment.yml").read_text()
    assert "python=3.11" in text and "-e .[test]" in text
