"""RD curves from the store, shipped published data and files; BD tables between them."""

import csv
import io
import json
import math

import bjontegaard
import pytest

from harness.curves import (
    bd_table,
    curve_from_file,
    curve_from_results,
    default_anchor,
    find_curve,
    measured_curves,
    published_curve,
    published_curves,
)
from harness.store import ImageRecord, ResultRow, ResultsStore
from tests.conftest import run_cli


def test_published_anchor_with_its_source():
    vtm = published_curve("vtm@published", "kodak")
    assert vtm.name == "vtm@published" and vtm.origin == "published"
    assert "InterDigitalInc/CompressAI" in vtm.source and "results/image/kodak" in vtm.source
    bpp, psnr = vtm.rd("psnr")
    assert len(bpp) == 8 and list(bpp) == sorted(bpp) and 26 < psnr[0] < psnr[-1] < 48
    assert vtm.has("ms-ssim")


def test_short_names_resolve_to_the_papers_curves():
    assert published_curve("stf", "kodak").name == "stf-mse.paper@published"
    assert published_curve("tcm", "kodak").name == "tcm-large-mse.paper@published"
    assert published_curve("bpg", "kodak").name == "bpg444@published"
    assert published_curve("no-such-codec", "kodak") is None
    # the harness's id of the 41-image CLIC validation set carries STF's and TCM's curves
    assert published_curve("stf", "clic2020-pro-valid") is not None
    assert published_curve("stf", "sample") is None


def test_tecnick_phases_use_the_tecnick_curves_with_a_caveat():
    tcm = published_curve("tcm", "tecnick-C00C00")
    assert tcm.dataset == "tecnick-C00C00"
    assert "does not say which subset" in tcm.description


def test_no_mislabeled_duplicates_are_shipped():
    names = {c.name for c in published_curves(["kodak", "clic2020-professional"])}
    assert names and not any("ms-ssim.8bit-cuda" in n for n in names)


def test_bd_table_agrees_with_the_bjontegaard_package():
    curves = published_curves(["kodak"], ["vtm", "tcm", "bpg"])
    table = bd_table(curves, anchor="vtm@published", metrics=["psnr"])
    row = table[table["codec"] == "tcm-large-mse.paper@published"].iloc[0]
    anchor, test = curves[0].rd("psnr"), curves[1].rd("psnr")
    expected = bjontegaard.bd_rate(*anchor, *test, method="pchip",
                                   require_matching_points=False, min_overlap=0)
    assert row["bd_rate"] == pytest.approx(expected, abs=1e-9)
    assert row["bd_rate"] == pytest.approx(-11.725, abs=1e-3)
    assert row["anchor"] == "vtm@published" and row["warning"] == ""


def test_bd_table_explains_what_it_cannot_compute():
    flat = curve_from_results("flat", "d", "imported", {"bpp": [0.1, 0.2, 0.4],
                                                        "psnr-rgb": [30.0, 29.0, 31.0]})
    good = curve_from_results("good", "d", "imported", {"bpp": [0.1, 0.2, 0.4],
                                                        "psnr-rgb": [28.0, 30.0, 32.0]})
    far = curve_from_results("far", "d", "imported", {"bpp": [5.0, 6.0], "psnr-rgb": [50, 51]})
    table = bd_table([good, flat, far], anchor="good", metrics=["psnr"]).set_index("codec")
    assert math.isnan(table.loc["flat [imported]", "bd_rate"])
    assert "strictly" in table.loc["flat [imported]", "warning"]
    assert table.loc["flat [imported]", "reason"] == "non-monotonic"
    far = table.loc["far [imported]"]
    assert math.isnan(far["bd_rate"]) and "overlap" in far["warning"]
    assert far["reason"] == "no-overlap"
    no_anchor = bd_table([good, flat], metrics=["psnr"])
    assert set(no_anchor["warning"]) == {"no anchor (VTM, BPG or JPEG): pass --anchor NAME"}
    assert set(no_anchor["reason"]) == {"no-anchor"}


def test_default_anchor_prefers_vtm_then_bpg_then_jpeg():
    points = {"bpp": [0.5, 1], "psnr-rgb": [30, 33]}
    jpeg = curve_from_results("jpeg", "kodak", "measured", points)
    assert default_anchor([jpeg], "kodak") == "vtm@published"  # shipped for kodak
    on_sample = curve_from_results("jpeg", "sample", "measured", points)
    assert default_anchor([on_sample], "sample") == "jpeg"
    assert default_anchor([on_sample], "elsewhere") is None
    assert find_curve("bpg@published", "kodak", [jpeg]).name == "bpg444@published"


def _store_with_two_fingerprints(path):
    store = ResultsStore(path)
    store.put_images([ImageRecord("d", "a.png", "/a.png", "h", 10, 10, 1, 1)])
    for run, fingerprint, psnr in ((1, "old", 30.0), (2, "new", 31.0)):
        for quality, bpp in ((10, 0.5), (90, 2.0)):
            store.put_result(ResultRow("jpeg", fingerprint, quality, "h", 10, 10, 1, bpp,
                                       psnr + quality / 10, 0.9, 10.0, 0.1, 0.1,
                                       payload_bytes=bpp * 100 / 8), run_id=run)
    return store


def test_measured_curves_name_older_fingerprints_apart(tmp_path):
    with _store_with_two_fingerprints(tmp_path / "r.sqlite") as store:
        names = sorted(c.name for c in measured_curves(store))
    assert names == ["jpeg", "jpeg@old"]


def test_exported_json_reads_back_as_the_same_curve(tmp_path):
    with _store_with_two_fingerprints(tmp_path / "r.sqlite") as store:
        (curve,) = [c for c in measured_curves(store) if c.name == "jpeg"]
    path = tmp_path / "jpeg.json"
    path.write_text(json.dumps(curve.to_results_json()))
    again = curve_from_file(path, "d")
    assert again.rd("psnr")[1].tolist() == curve.rd("psnr")[1].tolist()
    assert again.rd("ms-ssim")[1].tolist() == pytest.approx(curve.rd("ms-ssim")[1].tolist())


def test_bd_command_mixes_published_and_files(tmp_path):
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps({"name": "my-model", "results": {
        "bpp": [0.2, 0.4, 0.8, 1.2], "psnr-rgb": [30.0, 32.5, 35.5, 37.5]}}))
    done = run_cli("bd", "--store", str(tmp_path / "none.sqlite"), "--files", f"kodak={mine}",
                   "--published", "vtm", "bpg", "--metrics", "psnr", "--format", "csv")
    assert done.returncode == 2 and "no results store" in done.stderr  # explicit --store
    done = run_cli("bd", "--files", f"kodak={mine}", "--published", "vtm", "bpg",
                   "--metrics", "psnr", "--format", "csv", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert {r["codec"] for r in rows} == {"my-model [imported: mine.json]", "bpg444@published"}
    assert {(r["rate"], r["aggregate"]) for r in rows} == {("payload", "mean-linear")}
    assert {r["anchor"] for r in rows} == {"vtm@published"}
    text = run_cli("bd", "--files", f"kodak={mine}", "--anchor", "bpg@published",
                   cwd=tmp_path)
    assert text.returncode == 0 and "BD against bpg444@published" in text.stdout


def test_bd_command_without_curves_is_a_usage_error(tmp_path):
    done = run_cli("bd", cwd=tmp_path)
    assert done.returncode == 2 and "no curves to compare" in done.stderr
