"""Per-image BD-rates and bootstrap intervals over images (harness/uncertainty.py)."""

from __future__ import annotations

import io
import math
from dataclasses import replace

import pandas as pd
import pytest

from harness import api
from harness.curves import published_curve
from harness.uncertainty import bootstrap_interval, per_image_bd, spans_zero
from tests.conftest import run_cli

QUALITIES = ["20", "40", "60", "80"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """jpeg and webp measured on the four sample photos (a real store)."""
    path = tmp_path_factory.mktemp("ci") / "results.sqlite"
    done = run_cli("run", "--codecs", "jpeg", "webp", "--qualities", *QUALITIES,
                   "--datasets", "sample", "--store", str(path), "--jobs", "1",
                   "--no-progress", "--no-report")
    assert done.returncode == 0, done.stderr
    return path


def _curves(store):
    found = {c.name: c for c in api.curves(store)}
    return found["jpeg"], found["webp"]


def test_the_interval_holds_the_estimate_and_is_reproducible(store):
    table = api.bd_table(store=store, anchor="jpeg", ci=True, resamples=400, seed=3)
    assert list(table["codec"]) == ["webp", "webp"]
    for row in table.itertuples():
        assert row.ci_reason == ""
        assert row.ci_low < row.bd_rate < row.ci_high, row
        assert row.ci_high - row.ci_low > 0.5  # four images: far from certain
    again = api.bd_table(store=store, anchor="jpeg", ci=True, resamples=400, seed=3)
    pd.testing.assert_frame_equal(table, again)
    # four images have few distinct resamples: with 400 the extremes of two seeds agree
    few = [api.bd_table(store=store, anchor="jpeg", ci=True, resamples=30, seed=seed)
           for seed in (3, 4)]
    assert not few[0]["ci_low"].equals(few[1]["ci_low"])
    assert "400 resamples, seed 3" in table.attrs["ci"]


def test_a_codec_against_itself_is_zero_in_every_resample(store):
    jpeg, _ = _curves(store)
    twin = replace(jpeg, label="jpeg again")
    low, high, reason = bootstrap_interval(twin, jpeg, "ms-ssim", resamples=200)
    assert (low, high, reason) == (pytest.approx(0, abs=1e-9), pytest.approx(0, abs=1e-9), "")
    assert spans_zero(low, high)


def test_curves_without_per_image_rows_get_no_interval(store):
    _, webp = _curves(store)
    anchor = published_curve("jpeg", "kodak")
    assert anchor is not None
    assert bootstrap_interval(webp, anchor, "psnr")[2] == "no-per-image-data"
    assert math.isnan(bootstrap_interval(webp, anchor, "psnr")[0])


def test_per_image_bd_rates(store):
    jpeg, webp = _curves(store)
    table = per_image_bd([jpeg, webp], "jpeg", "psnr")
    assert len(table) == 4 and table["image_hash"].is_unique
    assert table["bd_rate"].notna().sum() >= 3
    # each image's own BD-rate is webp's saving on that image: same sign as the mean's
    overall = api.bd_table([jpeg, webp], anchor="jpeg", metrics=["psnr"])["bd_rate"].iloc[0]
    assert overall < 0 and (table["bd_rate"].dropna() < 0).all()


def test_bd_ci_on_the_command_line(store):
    done = run_cli("bd", "--store", str(store), "--anchor", "jpeg", "--ci", "--resamples",
                   "200", "--format", "csv")
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(io.StringIO(done.stdout))
    assert {"ci_low", "ci_high", "ci_reason"} <= set(table.columns)
    assert (table["ci_low"] < table["bd_rate"]).all()
    text = run_cli("bd", "--store", str(store), "--anchor", "jpeg", "--ci", "--resamples",
                   "200")
    assert "95 % interval" in text.stdout and "200 resamples, seed 0" in text.stdout
    for bad_option in (("--resamples", "0"), ("--seed", "-1")):
        bad = run_cli("bd", "--store", str(store), "--ci", *bad_option)
        assert bad.returncode == 2 and bad_option[0] in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr


def test_the_report_shows_the_intervals_and_each_images_bd_rate(store, tmp_path):
    """The report's BD table carries the same intervals as `harness bd --ci` (1000
    resamples, seed 0, stated in the caption) and a section draws each image's own
    BD-rate; the per-image values are in tables/per_image_bd.csv."""
    out = tmp_path / "report"
    done = run_cli("report", "--store", str(store), "--out", str(out), "--anchor", "jpeg",
                   "--no-published")
    assert done.returncode == 0, done.stderr
    expected = api.bd_table(store=store, anchor="jpeg", ci=True, published=False)
    wide = pd.read_csv(out / "tables" / "bd.csv")
    webp = wide[wide["codec"] == "webp"].iloc[0]
    for metric in ("psnr", "ms-ssim"):
        row = expected[(expected["codec"] == "webp") & (expected["metric"] == metric)].iloc[0]
        assert webp[f"ci_{metric}"] == f"[{row.ci_low:.2f}, {row.ci_high:.2f}]"
    caption = (out / "tables" / "bd.md").read_text()
    assert "95 % bootstrap over images (1000 resamples, seed 0)" in caption
    assert "95 % interval PSNR" in caption
    per_image = pd.read_csv(out / "tables" / "per_image_bd.csv")
    jpeg, webp_curve = _curves(store)
    direct = per_image_bd([jpeg, webp_curve], "jpeg", "psnr")
    assert sorted(per_image["image_id"]) == sorted(
        ["astronaut.png", "chelsea.png", "coffee.png", "rocket.png"])
    merged = per_image.merge(direct, on="image_hash", suffixes=("", "_direct"))
    assert len(merged) == 4
    assert merged["bd_rate"].to_numpy() == pytest.approx(merged["bd_rate_direct"].to_numpy())
    page = (out / "index.html").read_text()
    section = page.split('<section id="per-image-bd">')[1].split("</section>")[0]
    assert '<img src="plots/sample_per_image_bd.svg"' in section
    assert "4 images, 1 curves against jpeg" in section
    assert '<a href="#per-image-bd">' in page
    assert (out / "plots" / "sample_per_image_bd.png").stat().st_size > 1000


def _synthetic(name, scale, images=4):
    """A measured curve whose rate is ``scale`` times the reference's at every quality,
    per image: nlpd falls and psnr-y rises with the rate; ms-ssim is the same everywhere."""
    import numpy as np

    from harness.curves import Curve

    rows = []
    for image in range(images):
        for quality, bpp in enumerate((0.2, 0.4, 0.8, 1.6)):
            rate = scale * bpp * (1 + 0.1 * image)
            rows.append({"image_hash": f"h{image}", "image_id": f"i{image}",
                         "quality": quality, "bpp": rate, "psnr": 30 + quality,
                         "ms_ssim": 0.9, "ms_ssim_db": 10.0,
                         "psnr-y": 25 + 6 * np.log2(bpp), "nlpd": 0.5 - 0.1 * np.log2(bpp)})
    per_image = pd.DataFrame(rows)
    points = per_image.groupby("quality", as_index=False).mean(numeric_only=True)
    return Curve(name, "set", "measured", points.sort_values("bpp").reset_index(drop=True),
                 per_image=per_image)


def test_bd_and_intervals_of_registry_metrics_read_their_own_values():
    """BD reads a metric where lower is better (nlpd) negated: fewer bits for the same
    NLPD is a negative BD-rate, a lower NLPD at the same rate a negative BD quality. The
    interval of psnr-y is computed on psnr-y (it used MS-SSIM's values)."""
    from harness.curves import bd_table

    anchor, better = _synthetic("anchor", 1.0), _synthetic("better", 0.9)
    table = bd_table([anchor, better], anchor="anchor", metrics=["nlpd", "psnr-y"])
    for row in table.itertuples():
        assert row.reason in ("", "partial-overlap"), row  # 10 % fewer bits: a shifted span
        assert row.bd_rate == pytest.approx(-10.0, abs=0.01), row
    quality = dict(zip(table["metric"], table["bd_quality"]))
    assert quality["nlpd"] < 0 < quality["psnr-y"]
    for metric in ("nlpd", "psnr-y"):
        low, high, reason = bootstrap_interval(better, anchor, metric, resamples=100)
        assert reason == ""
        assert (low, high) == (pytest.approx(-10.0, abs=0.01), pytest.approx(-10.0, abs=0.01))
    rates = per_image_bd([anchor, better], "anchor", "nlpd")
    assert list(rates["bd_rate"]) == pytest.approx([-10.0] * 4, abs=0.01)
