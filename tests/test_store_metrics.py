"""The store's long ``metrics`` table: one value per result row and metric."""

import math
import os
import sqlite3
import stat

from harness.store import ResultRow, ResultsStore
from tests.test_store import _image


def _row(codec="jpeg", fingerprint="fp", image_hash="h1", metrics=None, **values):
    row = ResultRow(codec, fingerprint, 50, image_hash, 10, 20, 25, 1.0, 30.0, **values)
    row.metrics = metrics
    return row


def test_metrics_come_back_as_columns_named_by_the_metric(tmp_path):
    with ResultsStore(tmp_path / "r.sqlite") as store:
        _image(store)
        _image(store, image_id="b.png", image_hash="h2")
        store.put_result(_row(metrics={"psnr-y": (41.5, "psnr-y/v1/bt709-10bit"),
                                       "psnr-u": (math.inf, "psnr-u/v1/bt709-10bit"),
                                       "ms-ssim-y": (math.nan, "ms-ssim-y/v1/bt709-10bit")}))
        store.put_result(_row(image_hash="h2"))  # measured without the extra metrics
        first, second = store.rows()
        assert first["psnr-y"] == 41.5 and first["psnr-u"] == math.inf
        assert math.isnan(first["ms-ssim-y"])
        assert math.isnan(second["psnr-y"]) and math.isnan(second["psnr-u"])
        assert first["psnr"] == 30.0  # the results table is as before
        assert store.metric_fingerprints("fp") == {(50.0, "h1"): {
            "psnr-y": "psnr-y/v1/bt709-10bit", "psnr-u": "psnr-u/v1/bt709-10bit",
            "ms-ssim-y": "ms-ssim-y/v1/bt709-10bit"}}
        # a new measurement of the row replaces every value of the old reconstruction
        store.put_result(_row(metrics={"psnr-y": (40.0, "psnr-y/v1/bt601-8bit")}))
        assert store.metric_fingerprints("fp") == {(50.0, "h1"): {
            "psnr-y": "psnr-y/v1/bt601-8bit"}}
        assert [r["psnr-y"] for r in store.rows()][0] == 40.0


def _old_store(path):
    """A store as written before the metrics table existed."""
    with ResultsStore(path) as store:
        _image(store)
        store.put_result(_row())
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE metrics")
    db.close()


def test_an_old_store_reads_unchanged_and_gets_the_table_when_written(tmp_path):
    path = tmp_path / "old.sqlite"
    _old_store(path)
    before = path.read_bytes()
    with ResultsStore(path, readonly=True) as store:
        (row,) = store.rows()
        assert row["psnr"] == 30.0 and "psnr-y" not in row
        assert store.metric_fingerprints("fp") == {}
    assert path.read_bytes() == before
    with ResultsStore(path) as store:
        store.put_result(_row(image_hash="h1", metrics={"psnr-y": (39.0, "psnr-y/v1")}))
        assert store.rows()[0]["psnr-y"] == 39.0


def test_a_store_without_write_permission_still_reads_its_metrics(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "r.sqlite"
    with ResultsStore(path) as store:
        _image(store)
        store.put_result(_row(metrics={"psnr-v": (44.0, "psnr-v/v1")}))
    os.chmod(path, stat.S_IRUSR)
    os.chmod(folder, stat.S_IRUSR | stat.S_IXUSR)
    try:
        with ResultsStore(path, readonly=True) as store:
            assert store.rows()[0]["psnr-v"] == 44.0
    finally:
        os.chmod(folder, stat.S_IRWXU)
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
