"""Findings about codecs apart from RD rows (the store's ``diagnostics`` table): complexity
profiles kept by ``harness profile --store`` and thread matrices kept by ``harness verify
--cross``, shown in the report's "Codecs" section and written as tables."""

from __future__ import annotations

import csv
import json
import sqlite3

import pandas as pd
import pytest

from harness.report.diagnostics import portability_table, section
from harness.store import ResultsStore
from tests.conftest import run_cli


@pytest.fixture
def measured_store(tmp_path):
    store = tmp_path / "results.sqlite"
    done = run_cli("run", "--codecs", "jpeg", "--qualities", "50", "--no-report",
                   "--no-progress", "--store", str(store))
    assert done.returncode == 0, done.stderr
    return store


def _profile(store, size: str) -> dict:
    done = run_cli("profile", "bmshj2018-factorized", "--size", size, "--runs", "1",
                   "--no-memory", "--format", "json", "--store", str(store))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_profiles_kept_in_the_store_are_the_reports_complexity_table(measured_store, tmp_path):
    out = tmp_path / "report"
    assert run_cli("report", "--store", str(measured_store), "--out", str(out)).returncode == 0
    page = (out / "index.html").read_text()
    assert 'id="diagnostics"' not in page and not (out / "tables" / "complexity.csv").exists()
    first_inputs = json.loads((out / "report.json").read_text())["inputs"]

    small = _profile(measured_store, "64x64")
    _profile(measured_store, "64x64")  # the same profile again replaces the first
    wide = _profile(measured_store, "64x128")
    assert run_cli("report", "--store", str(measured_store), "--out", str(out)).returncode == 0
    assert json.loads((out / "report.json").read_text())["inputs"] != first_inputs
    with open(out / "tables" / "complexity.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["size"] for r in rows] == ["64x128", "64x64"]
    by_size = {r["size"]: r for r in rows}
    assert float(by_size["64x64"]["params_m"]) * 1e6 == pytest.approx(small["parameters"])
    assert float(by_size["64x128"]["kmac_decode"]) == pytest.approx(
        wide["kmac_per_pixel"]["decode"])
    assert by_size["64x64"]["weights"] == "random (released layout)"
    page = (out / "index.html").read_text()
    assert '<section id="diagnostics">' in page and '<a href="#diagnostics">' in page
    assert "bmshj2018-factorized" in page.split('<section id="diagnostics">')[1]
    assert (out / "tables" / "complexity.tex").read_text().count("bmshj2018-factorized") == 2


def test_a_store_from_before_the_table_reads_unchanged(measured_store, tmp_path):
    with sqlite3.connect(measured_store) as db:
        db.execute("DROP TABLE diagnostics")
    before = measured_store.read_bytes()
    done = run_cli("report", "--store", str(measured_store), "--out", str(tmp_path / "r"))
    assert done.returncode == 0, done.stderr
    assert measured_store.read_bytes() == before  # a read command does not upgrade it
    with ResultsStore(measured_store, readonly=True) as store:
        assert store.diagnostics() == []
    _profile(measured_store, "32x32")  # a writing command adds the table
    with ResultsStore(measured_store, readonly=True) as store:
        assert [d["kind"] for d in store.diagnostics()] == ["profile"]


def test_a_matrix_that_is_not_portable_says_so():
    record = {"codec": "entroformer", "quality": 1.0, "measured": "today", "document": {
        "threads": [1, 2], "same_bytes": False, "latents_differ": [[1, 2]],
        "max_error": [[1, 1, 0], [1, 2, 145], [2, 1, None], [2, 2, 0]],
        "failures": ["entroformer: a decoder failed on another thread count's bytes"],
        "device": "cpu", "machine": "x86_64", "cpus": 2, "torch": "2"}}
    table = portability_table([record])
    row = table.frame.iloc[0]
    assert row["bytes"] == "differ" and row["latents"] == "differ"
    assert pd.isna(row["max_error"]) and "decoder failed" in row["verdict"]
    html = section(None, table, [record])
    assert "<td>145 (latents differ)</td>" in html and "<td>failed</td>" in html
