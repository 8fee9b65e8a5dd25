"""RD curves from the store, shipped published data and files; BD tables between them."""

import csv
import io
import json
import math
import shutil

import bjontegaard
import pytest
from PIL import Image

from harness.curves import (
    bd_table,
    curve_from_file,
    curve_from_results,
    default_anchor,
    find_curve,
    measured_curves,
    published_curve,
    published_curves,
    unique_labels,
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
    (message,) = set(no_anchor["warning"])
    assert "harness run --codecs vtm --datasets d" in message and "--anchor NAME" in message
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
    # curves exist, but on none of the datasets asked for: say which datasets have some
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps({"name": "mine", "results": {
        "bpp": [0.2, 0.4, 0.8], "psnr-rgb": [29.0, 32.0, 35.0]}}))
    unknown = run_cli("bd", "--files", f"kodak={mine}", "--datasets", "kodakk", cwd=tmp_path)
    assert unknown.returncode == 2, unknown.stderr
    assert unknown.stderr.startswith("error: no curve on kodakk. Did you mean kodak?")
    assert "no curves to compare" not in unknown.stderr  # one message, the one that helps


# --- one convention everywhere: the identical-data case -----------------------------------

COMPRESSAI_KEYS = ("bpp", "psnr-rgb", "ms-ssim-rgb")


@pytest.fixture(scope="module")
def jpeg_on_sample(tmp_path_factory):
    """`harness run --codecs jpeg --datasets sample` and its export, made once."""
    base = tmp_path_factory.mktemp("jpeg-sample")
    store = base / "results.sqlite"
    done = run_cli("run", "--codecs", "jpeg", "--datasets", "sample", "--store", str(store),
                   "--no-report", "--no-progress", "--jobs", "1")
    assert done.returncode == 0, done.stderr
    assert "rate: payload" in done.stdout and "aggregation: mean-linear" in done.stdout
    done = run_cli("export", "--store", str(store), "--out", str(base / "export"))
    assert done.returncode == 0, done.stderr
    return store, base / "export" / "sample" / "jpeg.json"


def _as_compressai_writes(exported, path):
    """The exported file cut down to the keys (and no meta) that CompressAI writes."""
    document = json.loads(exported.read_text())
    path.write_text(json.dumps({"name": "jpeg", "results": {
        k: document["results"][k] for k in COMPRESSAI_KEYS}}))
    return path


def test_identical_data_gives_zero_bd_against_imported_and_published_forms(jpeg_on_sample,
                                                                            tmp_path):
    store, exported = jpeg_on_sample
    reduced = _as_compressai_writes(exported, tmp_path / "jpeg.json")
    done = run_cli("bd", "--store", str(store), "--files", f"sample={reduced}", "--anchor",
                   "jpeg", "--format", "csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert {r["metric"] for r in rows} == {"psnr", "ms-ssim"}
    for row in rows:
        assert row["codec"] == "jpeg [imported: jpeg.json]" and row["anchor"] == "jpeg"
        assert abs(float(row["bd_rate"])) < 0.01, row
    # the same numbers as a published curve (CompressAI's form, its conventions)
    with ResultsStore(store) as opened:
        (measured,) = measured_curves(opened)
    results = json.loads(reduced.read_text())["results"]
    published = curve_from_results("jpeg@published", "sample", "published", results)
    table = bd_table([measured, published], anchor="jpeg")
    assert len(table) == 2 and (table["bd_rate"].abs() < 0.01).all(), table
    assert (table["bd_quality"].abs() < 1e-4).all()


def test_mean_db_is_a_named_alternative_that_is_not_mixed_silently(jpeg_on_sample, tmp_path):
    store, exported = jpeg_on_sample
    reduced = _as_compressai_writes(exported, tmp_path / "jpeg.json")
    args = ("bd", "--store", str(store), "--files", f"sample={reduced}", "--anchor", "jpeg",
            "--format", "csv", "--aggregate", "mean-db")
    refused = run_cli(*args)
    assert refused.returncode == 2
    assert "different rules" in refused.stderr and "--mixed-conventions" in refused.stderr
    mixed = run_cli(*args, "--mixed-conventions")
    assert mixed.returncode == 0, mixed.stderr
    rows = {r["metric"]: r for r in csv.DictReader(io.StringIO(mixed.stdout))}
    # mean of per-image dB differs from dB of the mean: the bias the default avoids
    assert abs(float(rows["ms-ssim"]["bd_rate"])) > 0.5
    assert abs(float(rows["psnr"]["bd_rate"])) < 0.01


def test_export_has_both_rates_and_the_conventions(jpeg_on_sample):
    _, exported = jpeg_on_sample
    document = json.loads(exported.read_text())
    assert document["meta"]["aggregate"] == "mean-linear"
    assert document["meta"]["rate"] == "payload" and document["meta"]["dataset"] == "sample"
    results = document["results"]
    assert results["bpp"] == results["bpp-payload"]
    assert len(results["bpp-file"]) == len(results["bpp"])
    db = [-10 * math.log10(1 - m) for m in results["ms-ssim-rgb"]]
    assert results["ms-ssim-db-rgb"] == pytest.approx(db, abs=1e-9)


# --- identity: collisions, labels, round trips ---------------------------------------------

def _results_file(path, name, bpp=(0.2, 0.4, 0.8, 1.2), psnr=(30.0, 32.5, 35.5, 37.5), **extra):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"name": name, "results": {
        "bpp": list(bpp), "psnr-rgb": list(psnr)}, **extra}))
    return path


def test_same_named_imports_get_distinct_ids_with_a_warning(tmp_path):
    store = str(tmp_path / "s.sqlite")
    first = _results_file(tmp_path / "kodak" / "compressai-mbt2018.json", "mbt2018")
    second = _results_file(tmp_path / "kodak" / "compressai-mbt2018-mean.json", "mbt2018",
                           psnr=(31.0, 33.5, 36.5, 38.5))
    assert run_cli("import", str(first), "--store", store).returncode == 0
    done = run_cli("import", str(second), "--store", store)
    assert done.returncode == 0, done.stderr
    assert "warning:" in done.stderr and "stored as 'mbt2018-2'" in done.stderr
    again = run_cli("import", str(second), "--store", store)  # the same file: replaced
    assert "warning" not in again.stderr and "mbt2018-2" in again.stdout
    done = run_cli("bd", "--store", store, "--anchor", "mbt2018", "--metrics", "psnr",
                   "--format", "csv")
    assert done.returncode == 0, done.stderr
    (row,) = csv.DictReader(io.StringIO(done.stdout))
    assert row["anchor"] == "mbt2018 [imported: compressai-mbt2018.json]"
    assert row["codec"] == "mbt2018-2 [imported: compressai-mbt2018-mean.json]"
    assert float(row["bd_rate"]) < -10
    removed = run_cli("import", "--remove", "mbt2018-2", "--store", store)
    assert removed.returncode == 0 and "removed mbt2018-2: 1" in removed.stdout
    unknown = run_cli("import", "--remove", "mbt2018-3", "--store", store)
    assert unknown.returncode == 2 and "Did you mean" in unknown.stderr


def test_imported_and_measured_curves_of_one_name_are_told_apart(jpeg_on_sample, tmp_path):
    store, exported = jpeg_on_sample
    reduced = _as_compressai_writes(exported, tmp_path / "jpeg.json")
    with ResultsStore(store) as opened:
        curves = measured_curves(opened) + [curve_from_file(reduced, "sample")]
    labels = [c.label for c in curves]
    assert labels == ["jpeg", "jpeg [imported: jpeg.json]"]
    twins = unique_labels(curves + [curve_from_file(reduced, "sample")])
    assert [c.label for c in twins][-1] == "jpeg [imported: jpeg.json] #2"


def test_export_then_import_keeps_every_dataset_id(tmp_path):
    store_path = tmp_path / "s.sqlite"
    with ResultsStore(store_path) as store:
        for dataset in ("folder:photos", "tecnick-C00C00"):
            store.put_images([ImageRecord(dataset, "a.png", "/a.png", "h", 10, 10, 1, 1)])
        for quality, bpp, psnr in ((10, 0.5, 30.0), (50, 1.0, 33.0), (90, 2.0, 37.0)):
            store.put_result(ResultRow("jpeg", "fp", quality, "h", 10, 10, 1, bpp, psnr, 0.9,
                                       10.0, 0.1, 0.1, payload_bytes=bpp * 100 / 8))
    assert run_cli("export", "--store", str(store_path), "--out",
                   str(tmp_path / "out")).returncode == 0
    other = str(tmp_path / "other.sqlite")
    for path in sorted((tmp_path / "out").rglob("*.json")):
        done = run_cli("import", str(path), "--store", other)
        assert done.returncode == 0, done.stderr
    with ResultsStore(other) as store:
        assert sorted(c["dataset"] for c in store.curves()) == ["folder:photos",
                                                                "tecnick-C00C00"]
    # and with --files, against the measured curve: a zero BD, not an empty anchor
    exported = next((tmp_path / "out").glob("folder_photos/*.json"))
    done = run_cli("bd", "--store", str(store_path), "--files", str(exported), "--anchor",
                   "jpeg", "--datasets", "folder:photos", "--metrics", "psnr", "--format",
                   "csv")
    assert done.returncode == 0, done.stderr
    (row,) = csv.DictReader(io.StringIO(done.stdout))
    assert row["dataset"] == "folder:photos" and row["anchor"] == "jpeg"
    assert float(row["bd_rate"]) == pytest.approx(0, abs=1e-9)


# --- import validation ---------------------------------------------------------------------

@pytest.mark.parametrize("results, message", [
    ({"bpp": [0.1, "0.2"], "psnr-rgb": [30, 31]}, "results['bpp'][1] is '0.2', not a number"),
    ({"bpp": [0.1, 0.2], "psnr-rgb": [30, True]}, "results['psnr-rgb'][1] is True, not a"),
    ({"bpp": [0.1, 0.2], "psnr-rgb": [30, float("nan")]}, "results['psnr-rgb'][1] is nan"),
    ({"bpp": [0.1, 0.2], "ms-ssim-rgb": [0.9, 1.5]}, "results['ms-ssim-rgb'][1] is 1.5"),
    ({"bpp": [0.0, 0.2], "psnr-rgb": [30, 31]}, "results['bpp'][0] is 0.0"),
    ({"bpp": [0.1, 99], "psnr-rgb": [30, 31]}, "results['bpp'][1] is 99"),
    ({"bpp": [0.1, None], "psnr-rgb": [30, 31]}, "results['bpp'][1] is None"),
])
def test_import_refuses_values_that_are_not_sane_numbers(tmp_path, results, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"name": "bad", "results": results}))
    done = run_cli("import", str(path), "--store", str(tmp_path / "s.sqlite"))
    assert done.returncode == 2
    assert message in done.stderr
    with ResultsStore(tmp_path / "s.sqlite") as store:
        assert store.curves() == []


def test_null_and_lossless_points_are_named_not_dropped_silently(tmp_path):
    path = tmp_path / "d" / "x.json"
    path.parent.mkdir()
    path.write_text('{"name": "x", "results": {"bpp": [0.1, 0.2, 0.4],'
                    ' "psnr-rgb": [30, null, Infinity], "ms-ssim-rgb": [0.9, 0.95, 0.99]}}')
    done = run_cli("import", str(path), "--store", str(tmp_path / "s.sqlite"))
    assert done.returncode == 0, done.stderr
    assert "psnr-rgb of point(s) 1, 2 is null or infinite" in done.stderr


def test_a_poisoned_store_is_skipped_with_a_warning(tmp_path, jpeg_on_sample):
    store, _ = jpeg_on_sample
    poisoned = tmp_path / "s.sqlite"
    shutil.copy(store, poisoned)
    with ResultsStore(poisoned) as opened:  # as an older version let it in
        opened.put_curve("evil", "sample", "x.json", {"name": "evil", "results": {
            "bpp": ["a", "b"], "psnr-rgb": [1, 2]}})
    done = run_cli("bd", "--store", str(poisoned), "--anchor", "jpeg", "--published", "vtm",
                   "--datasets", "kodak", "sample")
    assert "left out" in done.stderr and "import --remove evil" in done.stderr
    assert "Traceback" not in done.stderr
    report = run_cli("report", "--store", str(poisoned), "--out", str(tmp_path / "r"))
    assert report.returncode == 0, report.stderr


def test_names_that_break_mathtext_or_latex_render(tmp_path, jpeg_on_sample):
    store, exported = jpeg_on_sample
    name = r"$\frac{a}$ 50% & _x_"
    path = _results_file(tmp_path / "sample" / "odd.json", name,
                         bpp=(0.8, 1.2, 2.0), psnr=(33.0, 34.5, 37.0))
    copy = tmp_path / "s.sqlite"
    shutil.copy(store, copy)
    assert run_cli("import", str(path), "--store", str(copy)).returncode == 0
    done = run_cli("report", "--store", str(copy), "--out", str(tmp_path / "r"),
                   "--no-published")
    assert done.returncode == 0, done.stderr
    tex = (tmp_path / "r" / "tables" / "bd.tex").read_text()
    assert r"\$\textbackslash{}frac\{a\}\$ 50\% \& \_x\_" in tex
    assert run_cli("bd", "--store", str(copy), "--anchor", "jpeg").returncode == 0


def test_export_never_writes_infinity(tmp_path):
    store_path = tmp_path / "s.sqlite"
    with ResultsStore(store_path) as store:
        store.put_images([ImageRecord("d", "a.png", "/a.png", "h", 10, 10, 1, 1)])
        for quality, bpp, psnr in ((50, 1.0, 33.0), (100, 8.0, math.inf)):
            store.put_result(ResultRow("png", "fp", quality, "h", 10, 10, 1, bpp, psnr, 1.0,
                                       math.inf, 0.1, 0.1, payload_bytes=bpp * 100 / 8))
    assert run_cli("export", "--store", str(store_path), "--out",
                   str(tmp_path / "out")).returncode == 0
    text = (tmp_path / "out" / "d" / "png.json").read_text()

    def refuse(token):
        raise AssertionError(f"{token} is not JSON")

    document = json.loads(text, parse_constant=refuse)
    assert document["results"]["psnr-rgb"] == [33.0, None]


# --- names: dataset aliases, unknown curves and anchors -----------------------------------

def test_bd_accepts_the_dataset_aliases_run_accepts(tmp_path):
    done = run_cli("bd", "--datasets", "clic", "--published", "tcm", "stf",
                   "--anchor", "tcm", "--format", "csv", "--metrics", "psnr", cwd=tmp_path)
    assert done.returncode == 2 and "Did you mean tcm@published?" in done.stderr
    done = run_cli("bd", "--datasets", "clic", "--published", "tcm", "stf",
                   "--anchor", "tcm@published", "--format", "csv", "--metrics", "psnr",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert {r["dataset"] for r in rows} == {"clic2020-pro-valid"}


def test_unknown_published_curve_or_anchor_is_an_error_with_a_suggestion(tmp_path):
    done = run_cli("bd", "--datasets", "kodak", "--published", "vtmm", cwd=tmp_path)
    assert done.returncode == 2 and "no published curve named 'vtmm'" in done.stderr
    assert "Did you mean vtm" in done.stderr
    done = run_cli("bd", "--datasets", "kodak", "--published", "vtm", "bpg", "--anchor",
                   "vtn@published", cwd=tmp_path)
    assert done.returncode == 2 and "no anchor curve 'vtn@published'" in done.stderr
    assert "Did you mean vtm@published" in done.stderr


# --- reason codes in every output ---------------------------------------------------------

def test_reason_codes_reach_every_output_format(tmp_path, jpeg_on_sample):
    store, _ = jpeg_on_sample
    path = _results_file(tmp_path / "sample" / "near.json", "near",
                         bpp=(0.5, 0.5001, 1.0, 2.0), psnr=(30.0, 34.0, 34.5, 37.0))
    args = ("bd", "--store", str(store), "--files", str(path), "--anchor", "jpeg",
            "--metrics", "psnr")
    text = run_cli(*args)
    assert "close-rates" in text.stdout and "rate: payload" in text.stdout
    rows = list(csv.DictReader(io.StringIO(run_cli(*args, "--format", "csv").stdout)))
    assert rows[0]["reason"] == "close-rates" and rows[0]["bd_rate"] == ""
    document = json.loads(run_cli(*args, "--format", "json").stdout)
    assert document["rows"][0]["reason"] == "close-rates"
    assert document["rows"][0]["bd_rate"] is None and "payload" in document["conventions"]
    copy = tmp_path / "s.sqlite"
    shutil.copy(store, copy)
    assert run_cli("import", str(path), "--store", str(copy)).returncode == 0
    out = tmp_path / "r"
    done = run_cli("report", "--store", str(copy), "--out", str(out), "--no-published")
    assert done.returncode == 0, done.stderr
    for name in ("tables/bd.md", "tables/bd.csv", "tables/bd.tex", "index.html"):
        assert "close-rates" in (out / name).read_text(), name
    manifest = json.loads((out / "report.json").read_text())
    assert any(r["reason"] == "close-rates" for r in manifest["bd"])
    assert "rate: payload" in manifest["conventions"]
    assert "rate: payload" in (out / "index.html").read_text()


# --- the export's bpp is CompressAI's eval_model bpp ----------------------------------------

def test_exported_bpp_equals_compressai_eval_model(tmp_path, sample_pixels):
    """A zoo architecture with random weights, saved as a checkpoint, measured by the
    CLI and exported: its ``bpp`` is what ``compressai.utils.eval_model`` computes in
    its real (entropy-coded) mode on the same model and images: the bits of the strings
    over the original image's pixels. ``bpp-file`` adds the harness's header."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("compressai")
    from compressai.utils.eval_model.__main__ import inference, read_image
    from compressai.zoo import bmshj2018_factorized

    torch.manual_seed(0)
    model = bmshj2018_factorized(quality=1, pretrained=False).eval()
    model.update(force=True)
    checkpoint = tmp_path / "random.pth"
    torch.save(model.state_dict(), checkpoint)
    folder = tmp_path / "photos"
    folder.mkdir()
    # eval_model measures MS-SSIM too, which needs more than 160 pixels a side
    crops = {"a.png": sample_pixels[:176, :200], "b.png": sample_pixels[40:210, 60:250]}
    for name, pixels in crops.items():
        Image.fromarray(pixels).save(folder / name)
    store = tmp_path / "s.sqlite"
    done = run_cli("run", "--codecs", "bmshj2018-factorized", "--checkpoint", str(checkpoint),
                   "--datasets", str(folder), "--store", str(store), "--no-report",
                   "--no-progress", "--jobs", "1")
    assert done.returncode == 0, done.stderr
    assert run_cli("export", "--store", str(store), "--out",
                   str(tmp_path / "out")).returncode == 0
    (exported,) = (tmp_path / "out").rglob("*.json")
    results = json.loads(exported.read_text())["results"]
    with torch.no_grad():
        theirs = [inference(model, read_image(folder / name))["bpp"]
                  for name in sorted(crops)]
    assert results["bpp"] == [pytest.approx(sum(theirs) / len(theirs), abs=1e-6)]
    assert results["bpp-file"][0] > results["bpp"][0]  # the header is counted there only
