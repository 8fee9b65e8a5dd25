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
    assert list((REPO / "harness" / "checkpoint_manifests").glob("*.toml"))
    assert "checkpoint_manifests/*.toml" in data["harness"]
    assert list((REPO / "harness" / "report" / "assets").glob("*.js"))
    assert "report/assets/*.js" in data["harness"]  # the report page's script


IMPORT_TO_DISTRIBUTION = {"PIL": "pillow", "pytorch_msssim": "pytorch-msssim",
                          "skimage": "scikit-image", "yaml": "pyyaml"}


def test_every_imported_library_is_a_dependency():
    import ast
    import re
    import sys

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():  # lazily imported, guarded
        requirements += extra
    declared = {re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0].lower() for d in requirements}
    declared |= {"distributed"} if "dask" in declared else set()  # dask[distributed]
    imported = set()
    for path in (REPO / "harness").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = {m for m in imported if m not in sys.stdlib_module_names and m != "harness"}
    needed = {IMPORT_TO_DISTRIBUTION.get(m, m).lower() for m in third_party}
    assert needed <= declared, f"add to [project] dependencies: {sorted(needed - declared)}"
