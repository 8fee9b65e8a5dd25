"""The command line as a user calls it: subprocesses, real codecs, real SQLite files."""

import io
import json
import os
import shutil

import numpy as np
from PIL import Image

from harness.datasets import resolve_dataset
from tests.conftest import run_cli
from tests.conftest import stored_rows as _rows


def test_run_prints_a_table_and_resumes_from_the_store(tmp_path, photo_folder):
    store = tmp_path / "r.sqlite"
    args = ["run", "--datasets", str(photo_folder), "--codecs", "jpeg", "webp",
            "--qualities", "30", "70", "--jobs", "2", "--store", str(store), "--no-progress"]
    first = run_cli(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "8 measurements to make, 0 already" in first.stderr
    lines = [line for line in first.stdout.splitlines() if line.startswith("folder:photos-")]
    assert len(lines) == 4  # 2 codecs x 2 qualities, means over 2 images
    assert all(" 2 " in line for line in lines)
    rows = _rows(store)
    assert len(rows) == 8 and all(r[3] > 0 for r in rows)

    again = run_cli(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "0 measurements to make, 8 already" in again.stderr
    assert _rows(store) == rows  # nothing re-measured


def test_export_and_import_compressai_json(tmp_path, photo_folder):
    store = tmp_path / "r.sqlite"
    ran = run_cli("run", "--datasets", str(photo_folder), "--codecs", "jpeg", "--qualities",
                  "80", "20", "50", "--jobs", "1", "--store", str(store), "--no-progress")
    assert ran.returncode == 0, ran.stderr
    out = tmp_path / "json"
    exported = run_cli("export", "--store", str(store), "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    (path,) = out.glob("*/*.json")
    document = json.loads(path.read_text())
    assert document["name"] == "jpeg"
    results = document["results"]
    assert results["quality"] == [20, 50, 80]  # sorted by rate
    assert results["bpp"] == sorted(results["bpp"])
    assert len(results["psnr-rgb"]) == len(results["ms-ssim-rgb"]) == 3

    other = tmp_path / "other.sqlite"
    imported = run_cli("import", str(path), "--dataset", "photos", "--store", str(other))
    assert imported.returncode == 0, imported.stderr
    assert "imported jpeg on photos: 3 points" in imported.stdout


def test_a_corrupt_image_is_an_error_row_and_the_run_goes_on(tmp_path, photo_folder):
    (photo_folder / "broken.png").write_bytes((photo_folder / "a.png").read_bytes()[:300])
    (photo_folder / "empty.jpg").write_bytes(b"")
    store = tmp_path / "r.sqlite"
    result = run_cli("run", "--datasets", str(photo_folder), "--codecs", "jpeg", "--qualities",
                     "50", "--jobs", "1", "--store", str(store), "--no-progress")
    assert result.returncode == 1
    ident = resolve_dataset(str(photo_folder)).id
    assert ident.startswith("folder:photos-")
    assert f"image skipped: {ident}/broken.png" in result.stderr
    assert f"image skipped: {ident}/empty.jpg" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(_rows(store)) == 2  # the two good images were measured


def test_unknown_dataset_and_codec_are_usage_errors(tmp_path):
    bad_dataset = run_cli("run", "--datasets", "kodakk", "--store", str(tmp_path / "r.sqlite"))
    assert bad_dataset.returncode == 2
    assert "kodak" in bad_dataset.stderr and "Traceback" not in bad_dataset.stderr
    bad_codec = run_cli("run", "--codecs", "jpg", "--store", str(tmp_path / "r.sqlite"))
    assert bad_codec.returncode == 2
    assert "unknown codec 'jpg'" in bad_codec.stderr and "jpeg" in bad_codec.stderr


def test_codecs_lists_builtins_with_quality_points():
    listed = run_cli("codecs")
    assert listed.returncode == 0
    for name in ("jpeg", "jpeg-444", "webp", "jpeg2000"):
        assert f"\n{name} " in "\n" + listed.stdout
    assert "target PSNR in dB: 26, 28" in listed.stdout


def test_help_everywhere():
    for command in ([], ["run"], ["codecs"], ["datasets"], ["export"], ["import"]):
        shown = run_cli(*command, "--help")
        assert shown.returncode == 0 and "usage: harness" in shown.stdout
    assert "exit status" in run_cli("run", "--help").stdout


def test_lenient_loading_is_refused_where_the_codec_does_not_allow_it(tmp_path):
    done = run_cli("run", "--codecs", "jpeg", "--lenient", "--store", str(tmp_path / "r.sqlite"))
    assert done.returncode == 2 and "takes no --lenient" in done.stderr


def _means(stdout: str, prefix: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith(prefix)]


def test_dataset_membership_follows_the_files_on_disk(tmp_path, photo_folder):
    store = str(tmp_path / "r.sqlite")
    args = ["--codecs", "jpeg", "--qualities", "50", "--jobs", "1", "--store", store,
            "--no-progress", "--no-report"]
    other = tmp_path / "y" / photo_folder.name
    other.mkdir(parents=True)
    shutil.copyfile(photo_folder / "a.png", other / "only.png")
    first = run_cli("run", "--datasets", str(photo_folder), *args)
    second = run_cli("run", "--datasets", str(other), *args)
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    ids = {resolve_dataset(str(photo_folder)).id, resolve_dataset(str(other)).id}
    assert len(ids) == 2  # same base name, two datasets
    (line,) = _means(second.stdout, resolve_dataset(str(other)).id)
    assert " 1 " in line.split("jpeg", 1)[1][:20]  # one image, not the other folder's too

    # a deleted image leaves the means
    (photo_folder / "b.png").unlink()
    third = run_cli("run", "--datasets", str(photo_folder), *args)
    (line,) = _means(third.stdout, resolve_dataset(str(photo_folder)).id)
    assert " 1 " in line.split("jpeg", 1)[1][:20], third.stdout

    # new content with the same size and mtime is measured anew, without a stale row
    pixels = np.asarray(Image.open(photo_folder / "a.png")).copy()
    pixels[0, 0] = 255 - pixels[0, 0]
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PPM")
    ppm = photo_folder / "a.ppm"
    ppm.write_bytes(buf.getvalue())
    run_cli("run", "--datasets", str(photo_folder), *args)
    st = ppm.stat()
    pixels[0, 1] = 255 - pixels[0, 1]
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PPM")
    assert len(buf.getvalue()) == st.st_size
    ppm.write_bytes(buf.getvalue())
    os.utime(ppm, ns=(st.st_atime_ns, st.st_mtime_ns))
    fourth = run_cli("run", "--datasets", str(photo_folder), *args)
    assert fourth.returncode == 0, fourth.stderr
    assert "1 measurements to make" in fourth.stderr
    fifth = run_cli("run", "--datasets", str(photo_folder), *args)
    assert fifth.returncode == 0 and "0 measurements to make" in fifth.stderr


def _usage_error(done, *words):
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in done.stderr, done.stderr


def test_bad_run_arguments_are_usage_errors_before_anything_runs(tmp_path, photo_folder):
    store = tmp_path / "r.sqlite"
    base = ["run", "--datasets", str(photo_folder), "--codecs", "jpeg", "--store", str(store),
            "--no-progress"]
    _usage_error(run_cli(*base, "--qualities", "inf", cwd=tmp_path), "not a finite number")
    for value in ("-5", "nan", "inf", "0"):
        for option in ("--timeout", "--setup-timeout"):
            _usage_error(run_cli(*base, option, value, cwd=tmp_path),
                         "positive, finite number of seconds")
    for value in ("bogus://x", "local:0", "local:x", "tcp://host", "tcp://host:99999"):
        _usage_error(run_cli(*base, "--scheduler", value, cwd=tmp_path),
                     "expected local:N", value)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    _usage_error(run_cli(*base, "--report", str(a_file), cwd=tmp_path), "is not a folder")
    _usage_error(run_cli(*base, "--report", "/", cwd=tmp_path), "cannot be a report folder")
    _usage_error(run_cli("run", "--datasets", "kodak", "--store", str(store), cwd=tmp_path,
                         env={"HARNESS_DATA": str(a_file)}), "is a file, not a folder")
    assert not store.exists()  # refused before the store was even made


def test_unreadable_results_json_is_a_usage_error(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    huge = tmp_path / "huge.json"
    huge.write_text('{"name": "x", "results": {"bpp": [' + "9" * 5000 + '], "psnr-rgb": [30]}}')
    for path, why in ((deep, "recursion"), (huge, "digits")):
        _usage_error(run_cli("bd", "--files", str(path), cwd=tmp_path), why)
        _usage_error(run_cli("import", str(path), "--dataset", "x", "--store",
                             str(tmp_path / "r.sqlite"), cwd=tmp_path), why)
