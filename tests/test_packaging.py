"""What a non-editable install ships: every package and data file the code uses."""

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _setuptools() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_is_listed():
    found = {".".join(p.parent.relative_to(REPO).parts)
             for p in (REPO / "harness").rglob("__init__.py")}
    listed = set(_setuptools()["packages"])
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"


def test_data_files_are_shipped():
    data = _setuptools()["package-data"]
    published = list((REPO / "harness" / "published").rglob("*.json"))
    assert published and "published/*/*.json" in data["harness"]
    assert "published/index.json" in data["harness"]
    assert {"*.toml", "sample/*.png"} <= set(data["harness._manifests"])
