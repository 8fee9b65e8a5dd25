"""Fault injection: crashes, hangs, kills, a full disk, a dying Dask worker."""

import errno
import os
import pathlib
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from PIL import Image

from harness.errors import HarnessError, StoreError
from harness.report import build_report
from harness.report import plots as report_plots
from harness.store import ImageRecord, ResultRow, ResultsStore
from tests.conftest import count_rows, run_cli, stored_rows
from tests.test_registry import _with_plugin, installed_plugin  # noqa: F401 (fixture)
from tests.test_report import real_store  # noqa: F401 (fixture)


def _errors(store):
    with sqlite3.connect(store) as db:
        return db.execute("SELECT quality, error FROM results WHERE error IS NOT NULL"
                          " ORDER BY quality").fetchall()


def _run_faulty(codec, plugin, folder, tmp_path, *extra):
    store = tmp_path / f"{codec}.sqlite"
    done = run_cli("run", "--datasets", str(folder), "--codecs", codec, "--qualities", "2", "4",
                   "6", "--jobs", "2", "--store", str(store), "--no-progress", "--no-report",
                   *extra, env=_with_plugin(plugin), cwd=tmp_path)
    return done, store


def test_a_codec_that_segfaults_costs_only_its_own_rows(installed_plugin, photo_folder,  # noqa: F811
                                                        tmp_path):
    done, store = _run_faulty("toy-crash", installed_plugin, photo_folder, tmp_path)
    assert done.returncode == 1, done.stderr
    errors = _errors(store)
    assert [q for q, _ in errors] == [2.0, 2.0]  # both images at quality 2, nothing else
    assert all("worker process died" in e for _, e in errors)
    assert count_rows(store) == 6


def test_a_codec_that_hangs_hits_the_time_limit(installed_plugin, photo_folder,  # noqa: F811
                                                tmp_path):
    done, store = _run_faulty("toy-hang", installed_plugin, photo_folder, tmp_path,
                              "--timeout", "2")
    assert done.returncode == 1
    errors = _errors(store)
    assert [q for q, _ in errors] == [2.0, 2.0]
    assert all("TaskTimeout" in e for _, e in errors)
    assert count_rows(store) == 6


def test_a_hang_the_signal_cannot_stop_is_killed_by_the_watchdog(installed_plugin,  # noqa: F811
                                                                 photo_folder, tmp_path):
    started = time.monotonic()
    # the innocent tasks take milliseconds; a limit of a few seconds keeps them clear of
    # it on a loaded machine, while the stuck ones still need the watchdog
    done, store = _run_faulty("toy-stuck", installed_plugin, photo_folder, tmp_path,
                              "--timeout", "4")
    assert done.returncode == 1
    errors = _errors(store)
    assert [q for q, _ in errors] == [2.0, 2.0]
    assert all("measurement did not finish within 4 s; its worker was killed" in e
               for _, e in errors)
    assert count_rows(store) == 6 and time.monotonic() - started < 120


def test_a_slow_set_up_is_not_counted_in_the_task_time_limit(installed_plugin,  # noqa: F811
                                                             photo_folder, tmp_path):
    # warm-up takes 13 s, longer than --timeout plus the watchdog's grace (11 s)
    done, store = _run_faulty("toy-slow-warm-up", installed_plugin, photo_folder, tmp_path,
                              "--timeout", "1")
    assert done.returncode == 0, done.stderr
    assert _errors(store) == [] and count_rows(store) == 6


def test_a_set_up_past_its_own_limit_is_killed(installed_plugin, photo_folder,  # noqa: F811
                                               tmp_path):
    started = time.monotonic()
    store = tmp_path / "r.sqlite"
    done = run_cli("run", "--datasets", str(photo_folder), "--codecs", "toy-slow-warm-up",
                   "--qualities", "2", "--jobs", "2", "--store", str(store), "--no-progress",
                   "--no-report", "--setup-timeout", "1", "--timeout", "600",
                   env=_with_plugin(installed_plugin), cwd=tmp_path)
    assert done.returncode == 1
    errors = _errors(store)
    assert len(errors) == count_rows(store) == 2
    assert all("set-up (loading, warm-up) did not finish within 1 s; its worker was killed"
               in e for _, e in errors)
    assert time.monotonic() - started < 120


def test_ten_kills_at_random_moments_then_resume(tmp_path, sample_pixels):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(sample_pixels[i * 50:i * 50 + 200, i * 70:i * 70 + 280]).save(
            folder / f"p{i}.png")
    store = tmp_path / "r.sqlite"
    args = [sys.executable, "-m", "harness", "run", "--datasets", str(folder), "--codecs",
            "jpeg", "webp", "jpeg2000", "--jobs", "2", "--store", str(store), "--no-progress",
            "--no-report"]
    expected = 3 * (10 + 10 + 8)
    rng = random.Random(7)
    kept: list[tuple] = []
    for _ in range(10):
        process = subprocess.Popen(args, cwd=tmp_path, start_new_session=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5, 4.0))
        os.killpg(process.pid, signal.SIGKILL)  # the harness and its workers
        process.wait()
        now = stored_rows(store) if store.exists() else []
        assert set(kept) <= set(now)  # every finished row kept exactly as it was
        kept = now
    resumed = run_cli(*args[3:], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{expected - len(kept)} measurements to make, {len(kept)} already" in resumed.stderr
    with sqlite3.connect(store) as db:
        keys = db.execute("SELECT codec_fingerprint, quality, image_hash FROM results").fetchall()
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert len(keys) == expected == len(set(keys))


def test_a_full_disk_is_a_clear_error_and_the_store_stays_intact(tmp_path):
    path = tmp_path / "r.sqlite"
    store = ResultsStore(path)
    store.put_images([ImageRecord("d", "a.png", "/a.png", "h", 10, 10, 1, 1)])
    store.put_result(ResultRow("jpeg", "fp", 10, "h", 10, 10, 5, 0.4, 30.0))
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is now full
    with pytest.raises(StoreError, match="is full.*kept.*resume"):
        for quality in range(20, 2000):
            store.put_result(ResultRow("jpeg", "fp", quality, "h", 10, 10, 5, 0.4, 30.0,
                                       note="x" * 2000))
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT COUNT(*) FROM results WHERE quality = 10").fetchone()[0] == 1


def test_dask_local_cluster_survives_a_killed_worker(tmp_path, photo_folder):
    psutil = pytest.importorskip("psutil")
    pytest.importorskip("distributed")
    from harness import runner
    from harness.datasets import resolve_dataset
    from harness.registry import create_codec

    store = ResultsStore(tmp_path / "r.sqlite")
    images = runner.prepare_images(resolve_dataset(str(photo_folder)), store).images
    codecs = [(runner.CodecSpec(n), create_codec(n)) for n in ("jpeg", "webp", "jpeg2000")]
    qualities = {c.name: list(c.qualities) for _, c in codecs}
    tasks, _ = runner.plan(codecs, qualities, images, store)
    killed = []

    def kill_one_worker(row):
        if len(killed) == 0 and store.count_results() >= 5:
            # the local cluster's worker processes (spawned by their nannies)
            workers = [p for p in psutil.Process().children(recursive=True)
                       if "spawn_main" in " ".join(p.cmdline())]
            victim = workers[-1]
            victim.kill()
            killed.append(victim.pid)

    outcome = runner.execute(tasks, store, 1, 2, progress=False, scheduler="local:2",
                             on_result=kill_one_worker)
    assert killed, "no worker was killed"
    assert outcome.done == len(tasks) and outcome.failed == 0
    assert store.count_results() == len(tasks) == 2 * 28
    store.close()


def test_workers_end_soon_after_their_parent_is_killed(installed_plugin, photo_folder,  # noqa: F811
                                                       tmp_path):
    psutil = pytest.importorskip("psutil")
    env = dict(os.environ, **_with_plugin(installed_plugin))
    parent = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", "--datasets", str(photo_folder), "--codecs",
         "toy-hang", "--qualities", "2", "--jobs", "2", "--store", str(tmp_path / "r.sqlite"),
         "--no-progress", "--no-report"],
        cwd=tmp_path, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        workers: list = []
        while len(workers) < 2 and time.monotonic() < deadline:  # both hang in encode
            time.sleep(0.5)
            workers = [p for p in psutil.Process(parent.pid).children(recursive=True)
                       if "LokyProcess" in " ".join(p.cmdline())]
        assert len(workers) == 2
        helpers = psutil.Process(parent.pid).children(recursive=True)  # + resource trackers
        os.kill(parent.pid, signal.SIGKILL)  # the parent alone
        parent.wait()
        killed_at = time.monotonic()
        alive = helpers
        while alive and time.monotonic() - killed_at < 5:
            time.sleep(0.2)
            alive = [p for p in helpers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert alive == [], [" ".join(p.cmdline()) for p in alive]
    finally:
        for process in psutil.Process().children(recursive=True):
            if process.pid != parent.pid:
                process.kill()
        parent.kill()


def _left_in(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_ctrl_c_during_a_render_is_held_until_the_stage_ends(real_store, tmp_path,  # noqa: F811
                                                             monkeypatch):
    finished = []
    render = report_plots.render_plots

    def interrupted_while_drawing(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, in the middle of native drawing
        time.sleep(0.3)
        finished.append(True)
        return render(*args, **kwargs)

    monkeypatch.setattr(report_plots, "render_plots", interrupted_while_drawing)
    out = tmp_path / "reports" / "report"
    # a process started in the background by a shell ignores SIGINT; Ctrl-C is Python's here
    started_with = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            build_report(real_store, out)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, started_with)
    assert finished == [True]  # the stage ran to its end; the interrupt came after it
    assert _left_in(out.parent) == []  # no report, no half-written folder


def test_ctrl_c_during_report_rendering_exits_130_without_a_traceback(real_store,  # noqa: F811
                                                                      tmp_path):
    # the moments vary, so a signal lands in imports, reading, BD, drawing and writing
    for delay in (0.3, 0.6, 0.9, 1.2, 1.6, 2.0, 2.5, 3.0):
        out = tmp_path / f"r{delay}"
        process = subprocess.Popen(
            [sys.executable, "-m", "harness", "report", "--store", str(real_store), "--out",
             str(out)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
        assert "Traceback" not in stderr and "Fatal" not in stderr, (delay, stderr)
        if process.returncode == 130:
            assert "interrupted" in stderr
            assert not out.exists()
        elif process.returncode == 0:  # it came after the work
            assert (out / "index.html").is_file()
        else:  # -2: it came before Python could handle it (a slow start) or at its shutdown
            assert process.returncode == -signal.SIGINT, (delay, stderr)
            assert (out / "index.html").is_file() or not out.exists(), (delay, stderr)


def test_a_full_disk_while_writing_the_report_is_a_clear_error(real_store, tmp_path,  # noqa: F811
                                                               monkeypatch):
    out = tmp_path / "reports" / "report"
    build_report(real_store, out)
    before = (out / "index.html").read_bytes()
    write_text = pathlib.Path.write_text

    def full_disk(self, *args, **kwargs):
        if self.name == "index.html":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "write_text", full_disk)
    with pytest.raises(HarnessError, match="No space left on device.*previous report.*kept"):
        build_report(real_store, out, title="changed")  # changed, so it is rendered again
    assert _left_in(out.parent) == ["report"]  # nothing half-written beside it
    assert (out / "index.html").read_bytes() == before


def test_a_full_disk_on_a_real_filesystem(real_store, tmp_path):  # noqa: F811
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                          capture_output=True)
    if made.returncode != 0:
        pytest.skip("cannot mount a small filesystem here (needs root)")
    try:
        done = run_cli("report", "--store", str(real_store), "--out", str(mount / "rep"),
                       cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert "No space left on device" in done.stderr and "Traceback" not in done.stderr
        assert _left_in(mount) == []
    finally:
        subprocess.run(["umount", str(mount)], check=True)
