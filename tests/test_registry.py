"""Codec registry: built-ins by name, third-party codecs through the entry-point group."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.registry import create_codec
from tests.conftest import run_cli

PLUGIN_SOURCE = Path(__file__).parent / "plugin_pkg"


def test_unknown_name_suggests_close_ones():
    with pytest.raises(UsageError, match=r"unknown codec 'jpeg2k'.*Did you mean.*jpeg2000"):
        create_codec("jpeg2k")


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory) -> Path:
    """The toy plugin package, pip-installed (with its entry points) into a folder."""
    source = tmp_path_factory.mktemp("src") / "plugin"
    shutil.copytree(PLUGIN_SOURCE, source)
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(target), str(source)],
                   check=True, capture_output=True)
    assert list(target.glob("toy_codec_plugin-0.1.dist-info/entry_points.txt"))
    return target


def _with_plugin(site: Path) -> dict:
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


def test_an_installed_plugin_is_listed_and_runs(installed_plugin, photo_folder, tmp_path):
    env = _with_plugin(installed_plugin)
    listed = run_cli("codecs", env=env)
    assert listed.returncode == 0
    assert "toy-quantizer" in listed.stdout and "plugin from toy-codec-plugin" in listed.stdout
    # a broken plugin is listed as unavailable, and does not break the listing
    assert "toy-broken" in listed.stdout and "failed to load" in listed.stdout

    store = tmp_path / "r.sqlite"
    ran = run_cli("run", "--datasets", str(photo_folder), "--codecs", "toy-quantizer",
                  "--jobs", "1", "--store", str(store), "--no-progress", env=env)
    assert ran.returncode == 0, ran.stderr
    table = [line for line in ran.stdout.splitlines() if "toy-quantizer" in line]
    assert len(table) == 3
    # one byte per sample plus a 9-byte header on 256x192 crops: 24 + 72 / 49152 bpp
    assert all(" 24.0015 " in line for line in table)


def test_a_broken_plugin_is_a_clear_error(installed_plugin, photo_folder, tmp_path):
    ran = run_cli("run", "--datasets", str(photo_folder), "--codecs", "toy-broken",
                  "--store", str(tmp_path / "r.sqlite"), env=_with_plugin(installed_plugin))
    assert ran.returncode == 2
    assert "toy-broken" in ran.stderr and "failed to load" in ran.stderr
    assert "Traceback" not in ran.stderr
