import math
import sqlite3

import pytest

from harness.errors import StoreError
from harness.store import ImageRecord, ResultRow, ResultsStore


def _image(store, dataset="d", image_id="a.png", image_hash="h1"):
    store.put_images([ImageRecord(dataset, image_id, f"/x/{image_id}", image_hash, 10, 20,
                                  100, 1)])


def test_rows_round_trip_with_nan_and_inf(tmp_path):
    with ResultsStore(tmp_path / "r.sqlite") as store:
        _image(store)
        store.put_result(ResultRow("jpeg", "fp", 50, "h1", 10, 20, 25, 1.0, math.inf,
                                   math.nan, math.nan, 0.1, 0.2, note="too small"), run_id=1)
        (row,) = store.rows()
    assert row["dataset"] == "d" and row["image_id"] == "a.png" and row["bytes"] == 25
    assert row["psnr"] == math.inf and math.isnan(row["ms_ssim"])
    assert row["note"] == "too small"


def test_error_rows_are_not_finished_and_get_replaced(tmp_path):
    with ResultsStore(tmp_path / "r.sqlite") as store:
        _image(store)
        store.put_result(ResultRow("jpeg", "fp", 50, "h1", 10, 20, error="boom"))
        assert store.finished_keys("fp") == set()
        store.put_result(ResultRow("jpeg", "fp", 50, "h1", 10, 20, 5, 0.2, 30.0))
        assert store.finished_keys("fp") == {(50.0, "h1")}
        assert store.count_results() == 1


def test_one_measurement_serves_every_dataset_holding_the_image(tmp_path):
    with ResultsStore(tmp_path / "r.sqlite") as store:
        _image(store, "d1")
        _image(store, "d2", "copy.png")
        store.put_result(ResultRow("jpeg", "fp", 50, "h1", 10, 20, 5, 0.2, 30.0))
        assert {r["dataset"] for r in store.rows()} == {"d1", "d2"}
        assert len(store.rows(datasets=["d2"])) == 1


def test_runs_are_recorded(tmp_path):
    with ResultsStore(tmp_path / "r.sqlite") as store:
        run = store.start_run({"codecs": ["jpeg"]}, {"harness": "x"})
        store.end_run(run, "done")
        (record,) = store.runs()
    assert record["status"] == "done" and record["ended"] and '"cpus"' in record["host"]


def test_a_file_that_is_not_a_store_is_a_clear_error(tmp_path):
    bogus = tmp_path / "notes.sqlite"
    bogus.write_text("this is not a database " * 100)
    with pytest.raises(StoreError, match="cannot use .*notes.sqlite.*--store"):
        ResultsStore(bogus)


def test_a_store_of_another_schema_is_refused(tmp_path):
    path = tmp_path / "r.sqlite"
    ResultsStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(StoreError, match="schema 99"):
        ResultsStore(path)


def test_a_store_without_payload_bytes_is_brought_up_to_date(tmp_path):
    path = tmp_path / "old.sqlite"
    with ResultsStore(path) as store:
        _image(store)
        store.put_result(ResultRow("jpeg", "fp", 50, "h1", 10, 20, 25, 1.0, 30.0))
    with sqlite3.connect(path) as db:  # as the first release wrote it
        db.execute("DROP VIEW results_view")
        db.execute("ALTER TABLE results DROP COLUMN payload_bytes")
    with ResultsStore(path) as store:
        (row,) = store.rows()
        store.put_result(ResultRow("webp", "fp2", 50, "h1", 10, 20, 25, 1.0, 30.0,
                                   payload_bytes=20))
        assert row["bytes"] == 25 and row["payload_bytes"] is None
        assert {r["payload_bytes"] for r in store.rows()} == {None, 20}
