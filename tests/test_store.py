import math
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from harness.errors import StoreError
from harness.store import ImageRecord, ResultRow, ResultsStore
from tests.conftest import run_cli


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


def _foreign(path):
    """Someone else's SQLite file, with a table named like ours."""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE results (id INTEGER PRIMARY KEY, note TEXT)")
        db.execute("INSERT INTO results (note) VALUES ('precious')")
    db.close()
    return path.read_bytes()


def test_a_foreign_sqlite_file_is_refused_and_left_byte_for_byte_unchanged(tmp_path):
    path = tmp_path / "other.sqlite"
    before = _foreign(path)
    for readonly in (True, False):
        with pytest.raises(StoreError, match="not a harness results store; it was not changed"):
            ResultsStore(path, readonly=readonly)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.sqlite"]  # no -wal, no -shm


def test_read_commands_never_change_a_foreign_file(tmp_path):
    path = tmp_path / "other.sqlite"
    before = _foreign(path)
    for command in (["report", "--out", str(tmp_path / "rep")], ["bd"],
                    ["export", "--out", str(tmp_path / "exp")], ["run", "--codecs", "jpeg"],
                    ["import", str(tmp_path / "x.json")]):
        done = run_cli(*command, "--store", str(path), cwd=tmp_path)
        assert done.returncode == 2, (command, done.stderr)
        assert "not a harness results store" in done.stderr or command[0] == "import"
        assert "Traceback" not in done.stderr
        assert path.read_bytes() == before, command
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.sqlite"]


def test_a_read_only_open_writes_nothing(tmp_path):
    path = tmp_path / "r.sqlite"
    with ResultsStore(path) as store:
        _image(store)
        store.put_result(ResultRow("jpeg", "fp", 50, "h1", 10, 20, 25, 1.0, 30.0))
    before = path.read_bytes()
    with ResultsStore(path, readonly=True) as store:
        assert len(store.rows()) == 1
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            store.db.execute("INSERT INTO meta VALUES ('x', 'y')")
    assert path.read_bytes() == before


@pytest.mark.skipif(os.geteuid() == 0 and not shutil.which("setpriv"),
                    reason="as root, only another user sees a read-only file")
def test_a_read_only_store_serves_every_read_command_and_run_says_why_not(tmp_path, photo_folder):
    # Root writes through chmod 444, so the commands run as an unprivileged user when the
    # tests run as root: the store folder and file are then truly read-only for them.
    shared = Path(tempfile.mkdtemp(prefix="harness-ro-"))
    try:
        shared.chmod(0o755)
        photos = Path(shutil.copytree(photo_folder, shared / "photos"))
        folder = shared / "store"
        folder.mkdir()
        store = folder / "r.sqlite"
        done = run_cli("run", "--datasets", str(photo_folder), "--codecs", "jpeg",
                       "--qualities", "50", "--store", str(store), "--no-progress",
                       "--no-report")
        assert done.returncode == 0, done.stderr
        store.chmod(0o444)
        folder.chmod(0o555)
        out = shared / "out"
        out.mkdir(mode=0o777)
        out.chmod(0o777)
        before = store.read_bytes()
        prefix = []
        if os.geteuid() == 0:
            prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        env = dict(os.environ, MPLCONFIGDIR=str(out / "mpl"), HOME=str(out))

        def as_user(*args):
            return subprocess.run([*prefix, sys.executable, "-m", "harness", *args], env=env,
                                  cwd=out, capture_output=True, text=True, timeout=300)

        for command in (["report", "--out", str(out / "rep"), "--no-published"], ["bd"],
                        ["export", "--out", str(out / "exp")]):
            read = as_user(*command, "--store", str(store))
            assert read.returncode in (0, 1), (command, read.stderr)  # bd: one curve, 1
            assert "Traceback" not in read.stderr
        assert (out / "rep" / "index.html").is_file() and list(out.glob("exp/*/*.json"))
        ran = as_user("run", "--datasets", str(photos), "--codecs", "jpeg",
                      "--qualities", "60", "--store", str(store), "--no-progress")
        assert ran.returncode == 2 and "read-only" in ran.stderr, ran.stderr
        assert "Traceback" not in ran.stderr
        assert store.read_bytes() == before
    finally:
        for path in (shared / "store", shared / "store" / "r.sqlite"):
            if path.exists():
                path.chmod(0o755)
        shutil.rmtree(shared, ignore_errors=True)


def _open_fresh(path):
    try:
        ResultsStore(path).close()
    except StoreError as exc:
        return str(exc)
    return None


def test_concurrent_first_opens_of_a_fresh_store_all_succeed(tmp_path):
    context = multiprocessing.get_context("fork")
    with context.Pool(8) as pool:
        for round_ in range(20):
            path = tmp_path / f"fresh{round_}.sqlite"
            assert pool.map(_open_fresh, [path] * 8) == [None] * 8
            with sqlite3.connect(path) as db:
                assert db.execute("SELECT value FROM meta").fetchall() == [("1",)]
            db.close()


def test_a_schema_version_that_is_not_a_number_is_refused(tmp_path):
    path = tmp_path / "r.sqlite"
    ResultsStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value='two' WHERE key='schema_version'")
    db.close()
    for readonly in (True, False):
        with pytest.raises(StoreError, match="schema two"):
            ResultsStore(path, readonly=readonly)


def test_a_damaged_store_is_a_clear_error(tmp_path):
    path = tmp_path / "r.sqlite"
    with ResultsStore(path) as store:
        store.put_images([ImageRecord("d", f"{i}.png", "/x", f"h{i}", 1, 1, 1, 1)
                          for i in range(300)])
        for i in range(300):
            store.put_result(ResultRow("jpeg", "fp", 50, f"h{i}", 1, 1, note="x" * 200))
    data = bytearray(path.read_bytes())
    pages = len(data) // 4096
    for page in range(pages - 5, pages):  # the last pages: rows, not the schema
        data[page * 4096:page * 4096 + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="malformed.*damaged"):
        with ResultsStore(path, readonly=True) as store:
            store.rows()
    done = run_cli("export", "--store", str(path), "--out", str(tmp_path / "x"))
    assert done.returncode == 2 and "malformed" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_run_whose_process_died_reads_as_killed(tmp_path):
    path = tmp_path / "r.sqlite"
    ResultsStore(path).close()
    # a real process starts a run and dies without ending it
    subprocess.run([sys.executable, "-c", "import os, sys; from harness.store import"
                    " ResultsStore; ResultsStore(sys.argv[1]).start_run({}, {}); os._exit(9)",
                    str(path)], check=False, timeout=60)
    with ResultsStore(path) as store:  # this process's own run is alive
        alive = store.start_run({}, {})
    before = path.read_bytes()
    with ResultsStore(path, readonly=True) as store:
        assert [r["status"] for r in store.runs()] == ["killed", "running"]
    assert path.read_bytes() == before  # read: shown, not written
    with ResultsStore(path) as store:
        stored = [s for (s,) in store.db.execute("SELECT status FROM runs ORDER BY run_id")]
        assert stored == ["killed", "running"]  # written when opened for writing
        store.end_run(alive, "done")
