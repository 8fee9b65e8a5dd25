"""The Python API, used as a notebook would: in a fresh interpreter, by `import harness`."""

import json
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli


def run_python(code: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_a_notebook_measures_reads_compares_and_reports(tmp_path, photo_folder):
    code = f"""
        import json
        import harness

        rows = harness.benchmark(datasets=[{str(photo_folder)!r}], codecs=["jpeg", "webp"],
                                 qualities=[30, 70], store="results/s.sqlite", jobs=1,
                                 metrics=["bpp", "psnr"])
        again = harness.benchmark(datasets=[{str(photo_folder)!r}], codecs=["jpeg", "webp"],
                                  qualities=[30, 70], store="results/s.sqlite", jobs=1)
        per_image = harness.load_results("results/s.sqlite")
        means = harness.load_results("results/s.sqlite", codecs=["webp"], per_image=False)
        curves = harness.curves("results/s.sqlite")
        table = harness.bd_table(curves, anchor="jpeg", metrics=["psnr"])
        page = harness.report("results/s.sqlite", published=False)
        print(json.dumps({{
            "rows": len(rows), "columns": sorted(rows.columns), "again": len(again),
            "per_image": len(per_image), "means": len(means),
            "mean_codecs": sorted(set(means["codec"])),
            "curves": sorted(c.name for c in curves),
            "bd": table[["codec", "anchor"]].values.tolist(),
            "bd_rate": float(table["bd_rate"].iloc[0]),
            "report": str(page), "index": (page / "index.html").is_file()}}))
    """
    done = run_python(code, tmp_path)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["rows"] == out["again"] == out["per_image"] == 2 * 2 * 2
    assert out["columns"] == ["bpp", "codec", "dataset", "error", "image_id", "psnr", "quality"]
    assert "8 measurements to make, 0 already" in done.stderr
    assert "0 measurements to make, 8 already" in done.stderr  # the second call reused all
    assert (out["means"], out["mean_codecs"]) == (2, ["webp"])
    assert out["curves"] == ["jpeg", "webp"]
    assert out["bd"] == [["webp", "jpeg"]] and out["bd_rate"] < 0  # WebP beats JPEG
    assert out["report"] == str(tmp_path / "results" / "report") and out["index"]


def test_reading_a_missing_store_is_an_error_and_creates_nothing(tmp_path):
    done = run_python("""
        import harness
        from harness.errors import UsageError
        for read in (harness.load_results, harness.report):
            try:
                read("nowhere/s.sqlite")
            except UsageError as exc:
                print("refused:", exc)
    """, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("refused: no results store at nowhere/s.sqlite") == 2
    assert list(tmp_path.iterdir()) == []


def test_check_is_a_function_and_a_module(tmp_path):
    done = run_python("""
        import harness
        from harness import check as module      # the module import comes first here
        from harness.errors import UsageError
        try:
            harness.check("mbt2018", ["missing.pth"], "vtm@published")
        except UsageError as exc:
            print("refused:", exc)
        print(module is harness.check, callable(harness.curves), module.PASS)
    """, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "refused: checkpoint missing.pth does not exist" in done.stdout
    assert done.stdout.strip().endswith("True True pass")


def test_verify_and_profile_are_functions_and_modules(tmp_path):
    done = run_python("""
        import harness
        from harness.errors import UsageError
        result = harness.profile("bmshj2018-factorized", (32, 32), runs=1, memory=False,
                                 store="s.sqlite")
        from harness.profile import Profile       # the module, once imported, still calls
        print(isinstance(result, Profile), harness.load_results("s.sqlite").empty)
        try:
            harness.verify("jpeg")
        except UsageError as exc:
            print("refused:", exc)
        import harness.verify
        print(callable(harness.verify), harness.verify.PORTABLE_MAX_ERROR)
    """, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "True True", "refused: harness verify checks learned codecs; jpeg is not one", "True 1"]


def test_import_and_help_load_no_numerics(tmp_path):
    done = run_python("""
        import sys
        import harness
        from harness.cli import build_parser
        build_parser().format_help()
        print(sorted(m for m in ("numpy", "pandas", "torch", "PIL") if m in sys.modules))
    """, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_runs_report_goes_beside_its_store(tmp_path, photo_folder):
    done = run_cli("run", "--datasets", str(photo_folder), "--codecs", "jpeg",
                   "--qualities", "50", "--jobs", "1", "--no-progress",
                   "--store", str(tmp_path / "elsewhere" / "s.sqlite"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "elsewhere" / "report" / "index.html").is_file()
    assert not (tmp_path / "reports").exists()


def test_the_readme_python_walk_runs_as_written(tmp_path):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    walk = readme.split("### Python API", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    done = run_python(walk, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(str(tmp_path / "report" / "index.html"))
    assert "sample  webp" in done.stdout  # the BD table has WebP against the JPEG anchor


# --- harness codecs: fast, and saying where weights are missing ------------------------------

def test_codecs_lists_without_importing_torch_and_names_missing_weights(tmp_path):
    done = run_python("""
        import sys
        from harness.cli import main
        main(["codecs"])
        print("torch imported:", "torch" in sys.modules)
    """, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("torch imported: False")
    stf = done.stdout.split("\nstf ", 1)[1].split("\nwacnn ", 1)[0]
    assert stf.lstrip().startswith("installed; see below for weights")
    for quality in range(1, 7):
        assert f"no weights for stf at quality {quality}: pass --checkpoint FILE" in stf
    assert "jpeg         available\n" in done.stdout


def test_zoo_weights_in_torch_hubs_cache_are_found(tmp_path, monkeypatch):
    from harness.checkpoints import CheckpointError
    from harness.codecs.learned import ZOO_CODECS

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("HARNESS_CHECKPOINTS", str(tmp_path / "manifests"))
    codec = ZOO_CODECS["bmshj2018-factorized"]()
    url = codec.published_url(1)
    assert url in codec.missing_weights(1, check=True)
    hub = tmp_path / "torch" / "hub" / "checkpoints" / url.rsplit("/", 1)[-1]
    hub.parent.mkdir(parents=True)
    hub.write_bytes(b"as CompressAI's loader left it")
    assert codec.missing_weights(1, check=True) is None
    assert codec._cached_weights(url) == hub
    with pytest.raises(CheckpointError, match="sha256 does not start with"):
        codec.weights_path(1)  # found there, and its content checked against its name
    assert hub.is_file()  # torch hub's cache is left as it was


# --- Dask: two runs on one cluster -----------------------------------------------------------

def test_two_runs_at_once_on_one_dask_cluster_keep_their_own_results(tmp_path, photo_folder):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        # the one worker is busy until both runs have submitted all their tasks
        blocker = client.submit(time.sleep, 8, pure=False)
        runs = {codec: subprocess.Popen(
            [sys.executable, "-m", "harness", "run", "--datasets", str(photo_folder),
             "--codecs", codec, "--qualities", "40", "80", "--no-report", "--no-progress",
             "--scheduler", cluster.scheduler_address,
             "--store", str(tmp_path / f"{codec}.sqlite")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for codec in ("jpeg", "webp")}
        for run in runs.values():
            assert run.wait(timeout=240) == 0, run.stderr.read()
        assert blocker.done()
    for codec in runs:
        with sqlite3.connect(tmp_path / f"{codec}.sqlite") as db:
            stored = db.execute("SELECT codec, COUNT(*), COUNT(DISTINCT quality)"
                                " FROM results_view GROUP BY codec").fetchall()
        assert stored == [(codec, 4, 2)]  # 2 images x 2 qualities, none of the other run's


# --- details ----------------------------------------------------------------------------------

class _RateOff:
    """A learned codec stand-in whose real rate is 15 % below its estimate."""

    def model(self, quality):
        pass

    def forward(self, image, quality):
        return image, 1.0  # estimated bpp

    def encode(self, image, quality):
        return bytes(round(0.85 * image.shape[0] * image.shape[1] / 8))

    def decode(self, data):
        return self.image


def test_verify_fails_the_rate_gap_that_check_fails(monkeypatch, sample_pixels):
    from harness import verify

    monkeypatch.setattr(verify, "payload_bytes", len)  # the stand-in's bytes are all payload
    codec, image = _RateOff(), sample_pixels[:80, :80]  # 680 bytes: exactly 0.85 bpp
    codec.image = image
    checked = verify.verify_quality(codec, "x", {}, 1, [("a", image)], fresh_process=False)
    assert round(100 * checked.rate_gap, 2) == -15.0
    assert not checked.ok
    assert checked.failures == ["real rate -15.00 % from the estimate (limit 10 %)"]
    loose = verify.verify_quality(codec, "x", {}, 1, [("a", image)], fresh_process=False,
                                  max_rate_gap=20)
    assert loose.ok


def test_an_offline_container_build_fails_in_one_line_naming_source():
    from harness.containers import build_failure

    script = "set -eux; " + "apt-get install -y build-essential cmake; " * 60  # 2.6 KB
    error = f"The command '/bin/sh -c {script}' returned a non-zero code: 6"
    log = ["Step 5/9 : RUN set -eux; ...", " ---> Running in 1f2e3d",
           "curl: (6) Could not resolve host: bellard.org"]
    message = build_failure("bpg", error, log)
    assert "\n" not in message and len(message) < 400 and "apt-get" not in message
    assert "a download failed (curl: (6) Could not resolve host: bellard.org)" in message
    assert "harness containers build bpg --source FILE" in message
    compiled = build_failure("bpg", error.replace("code: 6", "code: 2"),
                             ["make: *** [Makefile:12: all] Error 1"])
    assert "exited with 2; its last output: make: *** [Makefile:12: all] Error 1" in compiled
    assert "apt-get" not in compiled


def test_files_of_a_dataset_folder_that_are_not_images_are_reported(tmp_path, photo_folder):
    (photo_folder / "notes.txt").write_text("shot on a Tuesday")
    (photo_folder / "raw").mkdir()
    (photo_folder / "raw" / "a.cr2").write_bytes(b"\0" * 16)
    (photo_folder / ".DS_Store").write_bytes(b"")  # hidden: skipped without a word
    done = run_cli("run", "--datasets", str(photo_folder), "--codecs", "jpeg", "--qualities",
                   "50", "--jobs", "1", "--no-report", "--no-progress",
                   "--store", str(tmp_path / "s.sqlite"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert ("skipped 2 file(s) that are not images by their suffix (notes.txt, raw/a.cr2);"
            " images end in") in done.stderr
    assert ".DS_Store" not in done.stderr


def test_a_text_file_given_as_a_checkpoint_is_called_what_it_is(tmp_path):
    from harness.checkpoints import CheckpointError, read_state_dict

    text = tmp_path / "weights.pth"
    text.write_text("model weights: see the README\n")
    with pytest.raises(CheckpointError) as refused:
        read_state_dict(text)
    assert "is not a readable PyTorch checkpoint: it is neither a torch.save zip" \
        " archive nor a pickle" in str(refused.value)
    assert "pickled Python objects" not in str(refused.value)


def test_codecs_says_which_files_of_a_model_of_your_own_are_missing(tmp_path):
    here = tmp_path / "q1.pth"
    here.write_bytes(b"PK\x03\x04")  # listing never reads the files
    (tmp_path / "mine.toml").write_text(
        'codec = "mine"\narchitecture = "bmshj2018-factorized"\n\n'
        f'[[checkpoints]]\nquality = 1\npath = "{here}"\nsha256 = "00"\n\n'
        f'[[checkpoints]]\nquality = 2\npath = "{tmp_path / "gone.pth"}"\nsha256 = "00"\n')
    done = run_cli("codecs", env={"HARNESS_CHECKPOINTS": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    mine = done.stdout.split("\nmine ", 1)[1]
    assert "model mine has no file for checkpoint 2 here (`harness models show mine`" in mine
    assert "checkpoint 1 " not in mine and "harness checkpoints add" not in mine


def test_a_command_that_measured_ends_its_worker_processes_when_it_returns(tmp_path,
                                                                            photo_folder):
    """Not at the interpreter's exit, where each would first unload torch and its
    networks (a second apiece): they are killed as the command returns."""
    done = run_python(f"""
        import time
        from harness import runner
        from harness.cli import main
        from harness.processes import pid_alive

        workers, stop = [], runner.stop_workers
        def spy():
            workers.extend(pid for pool in runner._pools if pool for pid in pool._processes)
            stop()
        runner.stop_workers = spy
        code = main(["run", "--datasets", {str(photo_folder)!r}, "--codecs", "jpeg",
                     "--jobs", "2", "--store", "s.sqlite", "--no-progress", "--no-report"])
        deadline = time.time() + 10
        while any(map(pid_alive, workers)) and time.time() < deadline:
            time.sleep(0.05)
        print("exit", code, "workers", len(workers), "alive", sum(map(pid_alive, workers)),
              "pools", len(runner._pools))
    """, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("exit 0 workers 2 alive 0 pools 0"), done.stdout
