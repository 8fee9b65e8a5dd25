"""`harness run --metrics`: the workers measure the selected metrics, the store keeps them,
a row without a requested metric is measured again, and they flow to export, bd, check."""

import json
import math

import numpy as np
import pytest

from harness.images import load_image
from harness.metrics.registry import MetricSet, expand
from harness.registry import create_codec
from harness.store import ResultsStore
from tests.conftest import run_cli, stored_rows
from tests.test_check import _check, trained  # noqa: F401  (a fixture)
from tests.test_registry import _with_plugin, installed_plugin  # noqa: F401  (a fixture)

# in the registry's order
JPEG_AI = ("psnr-y", "psnr-u", "psnr-v", "psnr-yuv", "ms-ssim-y", "psnr-hvs", "nlpd", "vif",
           "fsim", "iw-ssim")


def _run(store, folder, *extra, env=None):
    ran = run_cli("run", "--datasets", str(folder), "--codecs", "jpeg", "--qualities", "30",
                  "60", "--jobs", "1", "--store", str(store), "--no-progress", "--no-report",
                  *extra, env=env)
    assert ran.returncode == 0, ran.stderr
    return ran


def test_jpeg_ai_metrics_are_measured_stored_and_resumed(photo_folder, tmp_path):
    store = tmp_path / "r.sqlite"
    _run(store, photo_folder)  # the default: PSNR and MS-SSIM on RGB only
    default = stored_rows(store)
    with ResultsStore(store, readonly=True) as s:
        assert not any("psnr-y" in r for r in s.rows())

    ran = _run(store, photo_folder, "--metrics", "jpeg-ai")
    assert "4 measurements to make, 0 already" in ran.stderr  # rows lacking them: again
    # the printed means: a second table, one column per metric in the registry's order
    header = next(line for line in ran.stdout.splitlines() if "psnr-y" in line)
    assert header.split()[3:] == list(JPEG_AI)
    with ResultsStore(store, readonly=True) as s:
        rows = s.rows()
    assert len(rows) == 4 and all(set(JPEG_AI) <= r.keys() for r in rows)
    # the stored values are those of the codec's own reconstruction, computed here again
    row = next(r for r in rows if r["image_id"] == "a.png" and r["quality"] == 30)
    image = load_image(photo_folder / "a.png").pixels
    codec = create_codec("jpeg")
    decoded = codec.decode(codec.encode(image, 30))
    expected = MetricSet(expand(["jpeg-ai"])).measure(image, decoded)
    for name in JPEG_AI:
        # float32 torch metrics (vif, fsim, iw-ssim) sum in another order on another
        # thread count (the worker's): equal to float32's precision
        assert row[name] == pytest.approx(expected[name][0], rel=1e-6, abs=1e-9), name
    assert 20 < row["psnr-y"] < 60 and row["psnr-u"] > row["psnr-y"]  # chroma is smoother

    again = _run(store, photo_folder, "--metrics", "jpeg-ai")
    assert "0 measurements to make, 4 already" in again.stderr
    # the default run after it reuses every row (extra metrics are kept, not required)
    assert "0 measurements to make, 4 already" in _run(store, photo_folder).stderr
    # other Y'CbCr settings are another fingerprint: measured again
    eight = _run(store, photo_folder, "--metrics", "psnr-y", "--ycbcr-bits", "8")
    assert "4 measurements to make, 0 already" in eight.stderr
    with ResultsStore(store, readonly=True) as s:
        fingerprints = s.metric_fingerprints(s.rows()[0]["codec_fingerprint"])
    assert {f["psnr-y"] for f in fingerprints.values()} == {"psnr-y/v1/bt709-8bit"}
    # the other metrics of a row measured again are measured again with it, not lost
    assert all(set(JPEG_AI) <= set(f) for f in fingerprints.values())
    assert len(default) == len(stored_rows(store))


def test_unknown_or_unavailable_metrics_are_refused_before_measuring(photo_folder, tmp_path,
                                                                     installed_plugin):  # noqa: F811
    store = tmp_path / "r.sqlite"
    ran = run_cli("run", "--datasets", str(photo_folder), "--codecs", "jpeg", "--store",
                  str(store), "--metrics", "psnr-yy")
    assert ran.returncode == 2 and "unknown metric 'psnr-yy'" in ran.stderr
    assert "psnr-y" in ran.stderr and not store.exists()
    missing = run_cli("run", "--datasets", str(photo_folder), "--codecs", "jpeg", "--store",
                      str(store), "--metrics", "toy-needs-missing",
                      env=_with_plugin(installed_plugin))
    assert missing.returncode == 2 and "a_module_nobody_installed" in missing.stderr
    assert not store.exists()


def test_a_plugin_metric_is_measured_in_the_workers(photo_folder, tmp_path,
                                                    installed_plugin):  # noqa: F811
    store = tmp_path / "r.sqlite"
    _run(store, photo_folder, "--metrics", "toy-mae", env=_with_plugin(installed_plugin))
    with ResultsStore(store, readonly=True) as s:
        rows = s.rows()
    assert all(0 < r["toy-mae"] < 20 for r in rows)
    q30 = [r["toy-mae"] for r in rows if r["quality"] == 30]
    q60 = [r["toy-mae"] for r in rows if r["quality"] == 60]
    assert np.mean(q30) > np.mean(q60)  # more error at the lower quality


def test_extra_metrics_flow_to_export_bd_and_check(photo_folder, tmp_path):
    store = tmp_path / "r.sqlite"
    run_cli("run", "--datasets", str(photo_folder), "--codecs", "jpeg", "webp", "--jobs", "1",
            "--qualities", "20", "40", "60", "80", "--store", str(store), "--no-progress",
            "--no-report", "--metrics", "jpeg-ai")
    out = tmp_path / "export"
    exported = run_cli("export", "--store", str(store), "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    document = json.loads(next(out.glob("**/jpeg*.json")).read_text())
    results = document["results"]
    assert set(JPEG_AI) <= set(results) and len(results["psnr-y"]) == 4
    assert all(math.isfinite(v) for v in results["psnr-yuv"])

    table = run_cli("bd", "--store", str(store), "--anchor", "jpeg", "--metrics", "psnr-y",
                    "ms-ssim-y", "--format", "csv")
    assert table.returncode == 0, table.stderr
    lines = [line for line in table.stdout.splitlines() if line.startswith(
        tuple(f"{p}," for p in ("photos",))) or ",webp," in line]
    found = {line.split(",")[1] for line in lines if ",webp," in line}
    assert found == {"psnr-y", "ms-ssim-y"}, table.stdout


def test_check_compares_on_a_registry_metric(trained, tmp_path):  # noqa: F811
    good, worse = trained
    store = tmp_path / "r.sqlite"
    done = _check("--checkpoints", str(worse), "--baseline", str(good), "--metric", "psnr-y",
                  "--store", str(store), "--json", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    (comparison,) = json.loads(done.stdout)["comparisons"]
    assert comparison["numbers"]["delta_psnr_db"] < -0.05
    with ResultsStore(store, readonly=True) as s:
        rows = s.rows()
    means = {}
    for row in rows:
        means.setdefault(row["codec_fingerprint"], []).append((row["psnr-y"], row["psnr"]))
    psnr_y = [np.mean([y for y, _ in v]) for v in means.values()]
    psnr_rgb = [np.mean([p for _, p in v]) for v in means.values()]
    # the comparison is made on the Y'CbCr PSNR the workers measured, not on RGB PSNR
    assert any(comparison["numbers"]["psnr"] == pytest.approx(v, abs=1e-9) for v in psnr_y)
    assert not any(comparison["numbers"]["psnr"] == pytest.approx(v, abs=1e-6)
                   for v in psnr_rgb)
    refused = _check("--checkpoints", str(worse), "--baseline", str(good), "--metric", "vmaf-x",
                     "--store", str(store), cwd=tmp_path)
    assert refused.returncode == 2 and "unknown metric 'vmaf-x'" in refused.stderr


def test_exported_metrics_read_back_and_bad_values_are_refused(photo_folder, tmp_path):
    store = tmp_path / "r.sqlite"
    run_cli("run", "--datasets", str(photo_folder), "--codecs", "jpeg", "webp", "--jobs", "1",
            "--qualities", "20", "40", "60", "80", "--store", str(store), "--no-progress",
            "--no-report", "--metrics", "psnr-y", "ms-ssim-y")
    out = tmp_path / "export"
    assert run_cli("export", "--store", str(store), "--out", str(out)).returncode == 0
    jpeg, webp = (next(out.glob(f"*/{name}.json")) for name in ("jpeg", "webp"))
    from_store = run_cli("bd", "--store", str(store), "--anchor", "jpeg", "--metrics",
                         "psnr-y", "ms-ssim-y", "--format", "json")
    elsewhere = tmp_path / "elsewhere"  # no store there: the files alone
    elsewhere.mkdir()
    from_files = run_cli("bd", "--files", str(jpeg), str(webp), "--anchor",
                         "jpeg [imported: jpeg.json]", "--metrics", "psnr-y", "ms-ssim-y",
                         "--format", "json", cwd=elsewhere)
    assert from_files.returncode == 0, from_files.stderr
    stored = {r["metric"]: r["bd_rate"] for r in json.loads(from_store.stdout)["rows"]}
    read = {r["metric"]: r["bd_rate"] for r in json.loads(from_files.stdout)["rows"]}
    assert set(read) == {"psnr-y", "ms-ssim-y"}
    for metric, value in stored.items():
        assert value == pytest.approx(read[metric], abs=1e-6)
    document = json.loads(webp.read_text())
    document["results"]["psnr-y"][0] = 151.0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(document))
    refused = run_cli("import", str(bad), "--store", str(tmp_path / "i.sqlite"))
    assert refused.returncode == 2 and "results['psnr-y'][0] is 151.0" in refused.stderr


def test_the_python_api_measures_registry_metrics_it_is_asked_for(photo_folder, tmp_path):
    from harness import api

    frame = api.benchmark([str(photo_folder)], ["jpeg"], [50], tmp_path / "r.sqlite", jobs=1,
                          metrics=["psnr-rgb", "psnr-y", "bpp"])
    assert set(frame.columns) == {"dataset", "image_id", "codec", "quality", "error", "psnr",
                                  "psnr-y", "bpp"}
    assert (frame["psnr-y"] > 20).all()


def test_metrics_add_computes_from_kept_reconstructions_without_encoding(photo_folder,
                                                                         tmp_path):
    kept, fresh = tmp_path / "kept.sqlite", tmp_path / "fresh.sqlite"
    _run(kept, photo_folder, "--save", "recon")
    _run(fresh, photo_folder, "--metrics", "psnr-y", "ms-ssim-y")
    before = stored_rows(kept)
    added = run_cli("metrics", "add", "psnr-y", "ms-ssim-y", "--store", str(kept))
    assert added.returncode == 0, added.stderr
    assert ("added to 4 rows (4 from kept reconstructions, 0 from kept bitstreams decoded"
            " again, 0 re-encoded); 0 rows had them" in added.stdout)
    assert stored_rows(kept) == before  # no result row was measured or written again
    with ResultsStore(kept, readonly=True) as a, ResultsStore(fresh, readonly=True) as b:
        got = {(r["image_id"], r["quality"]): (r["psnr-y"], r["ms-ssim-y"]) for r in a.rows()}
        want = {(r["image_id"], r["quality"]): (r["psnr-y"], r["ms-ssim-y"]) for r in b.rows()}
    assert got.keys() == want.keys() and len(got) == 4
    for key, values in got.items():
        assert values == pytest.approx(want[key], abs=1e-9)
    # a run asking for them now finds them; adding again finds nothing to do
    assert "0 measurements to make, 4 already" in _run(kept, photo_folder, "--metrics",
                                                       "psnr-y", "ms-ssim-y").stderr
    again = run_cli("metrics", "add", "psnr-y", "--store", str(kept))
    assert "added to 0 rows" in again.stdout and "4 rows had them already" in again.stdout

    plain = tmp_path / "plain.sqlite"
    _run(plain, photo_folder)
    missing = run_cli("metrics", "add", "psnr-y", "--store", str(plain))
    assert missing.returncode == 1
    assert "4 rows have neither a kept reconstruction nor a kept bitstream" in missing.stderr
    assert "--metrics psnr-y" in missing.stderr
    useless = run_cli("metrics", "add", "psnr-rgb", "--store", str(plain))
    assert useless.returncode == 2 and "in every row already" in useless.stderr
