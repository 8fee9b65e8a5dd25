"""Models of your own (`harness models`): three real checkpoint files registered as one
named codec, measured, exported and compared as one curve, through the CLI."""

import csv
import json
import re
import sqlite3

import pytest
import torch

from harness.checkpoints import CheckpointEntry, Manifest, read_manifest, write_manifest
from tests.conftest import run_cli


def _zoo_file(path, architecture, seed, widths=(32, 48)):
    """A randomly initialised zoo network, CDF tables built, saved as a plain state_dict."""
    from compressai.zoo.image import model_architectures

    torch.manual_seed(seed)
    net = model_architectures[architecture](*widths)
    net.update(force=True)
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mine")
    three = [_zoo_file(folder / f"q{i}.pth", "bmshj2018-factorized", i) for i in (1, 2, 3)]
    other = _zoo_file(folder / "hyper.pth", "bmshj2018-hyperprior", 9)
    fourth = _zoo_file(folder / "q4.pth", "bmshj2018-factorized", 4)
    return three, other, fourth


@pytest.fixture
def env(tmp_path):
    return {"HARNESS_CHECKPOINTS": str(tmp_path / "manifests"), "HARNESS_DATA": str(tmp_path)}


def harness(*args, env):
    return run_cli(*args, env=env)


def add(name, *paths, env, extra=()):
    return harness("models", "add", name, "--arch", "bmshj2018-factorized", "--checkpoints",
                   *map(str, paths), *extra, env=env)


def test_three_checkpoints_are_one_codec_and_one_curve(files, env, tmp_path, photo_folder):
    (q1, q2, q3), _, q4 = files
    added = add("mine", q1, q2, q3, env=env, extra=("--lambdas", "0.0018", "0.0035", "0.0067",
                                                     "--description", "my factorized prior"))
    assert added.returncode == 0, added.stderr
    listed = harness("codecs", env=env)
    block = listed.stdout[listed.stdout.index("\nmine "):]
    assert "your model" in block.splitlines()[1] and "my factorized prior" in block
    assert "lambda 0.0018, 0.0035, 0.0067): 1, 2, 3" in block

    store = tmp_path / "r.sqlite"
    ran = harness("run", "--codecs", "mine", "jpeg", "--datasets", str(photo_folder),
                  "--store", str(store), "--jobs", "2", "--no-progress", "--no-report", env=env)
    assert ran.returncode == 0, ran.stderr
    with sqlite3.connect(store) as db:  # measured in worker processes, every point
        counts = dict(db.execute("SELECT quality, COUNT(*) FROM results WHERE codec = 'mine'"
                                 " AND error IS NULL GROUP BY quality").fetchall())
    assert counts == {1: 2, 2: 2, 3: 2}

    out = tmp_path / "out"
    assert harness("export", "--store", str(store), "--out", str(out), env=env).returncode == 0
    (exported,) = out.glob("*/mine.json")
    assert len(json.loads(exported.read_text())["results"]["bpp"]) == 3

    compared = harness("bd", "--store", str(store), "--anchor", "jpeg", "--format", "csv",
                       env=env)
    rows = [r for r in csv.DictReader(compared.stdout.splitlines()) if r["codec"] == "mine"]
    assert len(rows) == 2 and {r["points"] for r in rows} == {"3"}  # psnr, ms-ssim
    report = tmp_path / "report"
    made = harness("report", "--store", str(store), "--out", str(report), "--no-published",
                   "--anchor", "jpeg", env=env)
    assert made.returncode == 0, made.stderr
    bd_rows = [r for r in csv.DictReader((report / "tables" / "bd.csv").open())
               if r["codec"] == "mine"]
    assert len(bd_rows) == 1 and "3" in {v for k, v in bd_rows[0].items() if "points" in k}

    # a replaced file changes the fingerprint: the model is measured again, not reused
    replaced = add("mine", q1, q2, q4, env=env, extra=("--replace",))
    assert replaced.returncode == 0, replaced.stderr
    again = harness("run", "--codecs", "mine", "--datasets", str(photo_folder), "--store",
                    str(store), "--jobs", "1", "--no-progress", "--no-report", env=env)
    assert again.returncode == 0, again.stderr
    assert re.search(r"^6 measured in .* 0 reused", again.stdout, re.M), again.stdout


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU that PyTorch sees")
def test_a_model_on_the_gpu_beside_jpeg_on_the_cpu(files, env, tmp_path, photo_folder):
    """--device cuda: the model's three networks load once, in the GPU's worker; JPEG
    runs in the CPU's workers meanwhile; the GPU's measurements agree with the CPU's."""
    (q1, q2, q3), _, _ = files
    assert add("mine", q1, q2, q3, env=env).returncode == 0
    psnr = {}
    for device in ("cuda", "cpu"):
        store = tmp_path / f"{device}.sqlite"
        ran = harness("run", "--codecs", "mine", "jpeg", "--datasets", str(photo_folder),
                      "--device", device, "--store", str(store), "--jobs", "2",
                      "--no-progress", "--no-report", env=env)
        assert ran.returncode == 0, ran.stderr
        with sqlite3.connect(store) as db:
            rows = db.execute("SELECT quality, image_hash, psnr FROM results WHERE codec ="
                              " 'mine' AND error IS NULL").fetchall()
        assert len(rows) == 6
        psnr[device] = {(q, h): value for q, h, value in rows}
        if device == "cuda":
            assert "model loads: 3 in 1 worker" in ran.stdout, ran.stdout
    assert psnr["cuda"].keys() == psnr["cpu"].keys()
    assert all(abs(psnr["cuda"][k] - psnr["cpu"][k]) < 0.05 for k in psnr["cpu"]), psnr


def test_a_file_changed_after_add_is_refused_at_run(files, env, tmp_path, photo_folder):
    (q1, q2, _), _, _ = files
    copy = tmp_path / "copy.pth"
    copy.write_bytes(q2.read_bytes())
    assert add("mine", q1, copy, env=env).returncode == 0
    copy.write_bytes(q1.read_bytes()[:-8] + b"01234567")
    ran = harness("run", "--codecs", "mine", "--datasets", str(photo_folder), "--store",
                  str(tmp_path / "r.sqlite"), "--jobs", "1", "--no-progress", "--no-report",
                  env=env)
    assert ran.returncode == 1
    assert "mine q=2 skipped" in ran.stderr and "harness models add mine --replace" in ran.stderr


def test_a_checkpoint_of_another_architecture_is_refused_at_add(files, env):
    (q1, _, _), hyper, _ = files
    added = add("mine", q1, hyper, env=env)
    assert added.returncode == 2
    assert f"checkpoint 2 ({hyper}) is not a bmshj2018-factorized network" in added.stderr
    assert "not in the network" in added.stderr and "h_a.0: weight, bias" in added.stderr
    assert "fits the zoo architecture(s): bmshj2018-hyperprior" in added.stderr
    assert "Traceback" not in added.stderr
    assert "no models in" in harness("models", "list", env=env).stdout  # nothing written


def test_names_and_arguments_that_cannot_be_a_model(files, env):
    (q1, q2, _), _, _ = files
    for name in ("mbt2018", "jpeg", "tcm"):
        refused = add(name, q1, env=env)
        assert refused.returncode == 2 and f"{name} is already a built-in codec" in refused.stderr
    assert add("mine", q1, q2, env=env).returncode == 0
    twice = add("mine", q2, env=env)
    assert twice.returncode == 2 and "--replace" in twice.stderr
    cases = [(("bad/name", q1), (), "model name"),
             (("other", q1, q2), ("--lambdas", "0.1"), "1 --lambdas for 2 --checkpoints"),
             (("other", q1, q1), (), "are the same file"),
             (("other", q1.with_name("absent.pth")), (), "does not exist")]
    for (name, *paths), extra, message in cases:
        refused = add(name, *paths, env=env, extra=extra)
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
    arch = harness("models", "add", "other", "--arch", "jpeg", "--checkpoints", str(q1), env=env)
    assert arch.returncode == 2 and "not a learned architecture" in arch.stderr
    assert "tcm" in arch.stderr and "bmshj2018-factorized" in arch.stderr
    # a model's files are added with `models add`, which loads them into the architecture
    sideways = harness("checkpoints", "add", "mine", "--quality", "3", "--path", str(q1), env=env)
    assert sideways.returncode == 2 and "model of your own" in sideways.stderr


def test_list_show_remove(files, env, photo_folder, tmp_path):
    (q1, q2, q3), _, _ = files
    assert add("mine", q1, q2, q3, env=env, extra=("--lambdas", "1", "2", "3")).returncode == 0
    listed = harness("models", "list", env=env)
    assert listed.stdout.startswith("mine  bmshj2018-factorized, 3 checkpoints")
    shown = harness("models", "show", "mine", env=env)
    assert shown.returncode == 0
    assert f"q=2  lambda 2  {q2}  sha256" in shown.stdout
    assert harness("models", "show", "nosuch", env=env).returncode == 2

    removed = harness("models", "remove", "mine", env=env)
    assert removed.returncode == 0 and "files are kept" in removed.stdout and q1.is_file()
    assert "\nmine " not in harness("codecs", env=env).stdout
    ran = harness("run", "--codecs", "mine", "--datasets", str(photo_folder), "--store",
                  str(tmp_path / "r.sqlite"), env=env)
    assert ran.returncode == 2 and "unknown codec 'mine'" in ran.stderr
    assert harness("models", "remove", "mine", env=env).returncode == 2


def test_your_file_under_a_released_name_is_warned_about(files, env):
    (q1, _, _), _, _ = files
    added = harness("checkpoints", "add", "bmshj2018-factorized", "--quality", "1", "--path",
                    str(q1), env=env)
    assert added.returncode == 0, added.stderr
    assert "is not CompressAI's released bmshj2018-factorized-prior-1-" in added.stderr
    assert "harness models add NAME --arch bmshj2018-factorized" in added.stderr


def test_manifests_round_trip_any_path_and_config(tmp_path):
    path = 'we"ird\\ \n\tpath \u00e9\x01.pth'
    config = {"N": 128, "use_gdn": True, "note": 'it\'s "q"', "nested": {"a": 1, "b c": [1.5]},
              "ratio": 1e-5, "off": False}
    manifest = Manifest("my model", [CheckpointEntry(1, path, None, "ab", "mse", 0.0018, config),
                                     CheckpointEntry(2.5, "/x", "https://u", None, None, None)],
                        tmp_path / "m.toml", "bmshj2018-factorized", 'a "quoted"\ndescription')
    read = read_manifest(write_manifest(manifest))
    assert read == manifest
