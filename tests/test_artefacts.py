"""``harness run --save recon,bitstreams``, ``harness store clean`` and the report's gallery."""

import hashlib
import io
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness import metrics
from harness.artefacts import ArtefactFolder, folder_for, parse_save
from harness.errors import UsageError
from harness.report.gallery import busiest_window
from tests.conftest import run_cli, write_photo_crops

HASH_NAME = re.compile(r"^([0-9a-f]{64})\.(png|bin)$")


@pytest.fixture(scope="module")
def saved(tmp_path_factory, sample_pixels) -> Path:
    """A store made by the real CLI with --save recon,bitstreams: jpeg and webp on two
    crops of a real photo, two qualities each."""
    base = tmp_path_factory.mktemp("saved")
    folder = write_photo_crops(base / "photos", sample_pixels)
    store = base / "results.sqlite"
    done = run_cli("run", "--datasets", str(folder), "--codecs", "jpeg", "webp",
                   "--qualities", "20", "80", "--save", "recon,bitstreams", "--jobs", "2",
                   "--store", str(store), "--no-progress", "--no-report")
    assert done.returncode == 0, done.stderr
    return store


def _copy(store: Path, tmp_path: Path) -> Path:
    """A copy of the store and its artefacts folder (tests that change them)."""
    copy = tmp_path / "results.sqlite"
    shutil.copy(store, copy)
    shutil.copytree(folder_for(store), folder_for(copy))
    return copy


def _artefact_rows(store: Path) -> list[tuple]:
    with sqlite3.connect(store) as db:
        return db.execute(
            "SELECT r.codec, r.quality, r.image_hash, r.bytes, r.psnr, a.kind, a.sha256"
            " FROM artefacts a JOIN results r USING (codec_fingerprint, quality, image_hash)"
            " ORDER BY 1, 2, 3, 6").fetchall()


def _files(store: Path) -> dict[str, Path]:
    return {p.name: p for p in folder_for(store).rglob("*") if p.is_file()}


def test_saved_files_are_named_by_their_hash_and_belong_to_rows(saved):
    files = _files(saved)
    rows = _artefact_rows(saved)
    assert len(rows) == 2 * 2 * 2 * 2  # codecs x qualities x images x kinds
    assert {f"{sha}.{'png' if kind == 'recon' else 'bin'}" for *_, kind, sha in rows} \
        == set(files)
    for name, path in files.items():
        match = HASH_NAME.match(name)
        assert match and hashlib.sha256(path.read_bytes()).hexdigest() == match.group(1)
        assert path.parent.name == name[:2]
    with sqlite3.connect(saved) as db:  # nothing of them inside the SQLite file
        assert db.execute("SELECT COUNT(*) FROM results WHERE typeof(note) = 'blob'"
                          ).fetchone()[0] == 0
    assert saved.stat().st_size < min(p.stat().st_size for p in files.values()) * 50


def test_bitstream_decodes_to_the_stored_recon_which_gives_the_rows_psnr(saved):
    folder = ArtefactFolder(folder_for(saved))
    rows = _artefact_rows(saved)
    by_key: dict[tuple, dict] = {}
    for codec, quality, image_hash, size, psnr, kind, sha in rows:
        by_key.setdefault((codec, quality, image_hash, size, psnr), {})[kind] = sha
    photos = {}
    for path in (saved.parent / "photos").iterdir():
        from harness.images import load_image

        loaded = load_image(path)
        photos[loaded.content_hash] = loaded.pixels
    for (codec, quality, image_hash, size, psnr), kinds in by_key.items():
        bitstream = folder.path(kinds["bitstream"], "bitstream").read_bytes()
        assert len(bitstream) == size
        with Image.open(io.BytesIO(bitstream)) as im:  # a Pillow codec: a plain file
            assert im.format == {"jpeg": "JPEG", "webp": "WEBP"}[codec]
            decoded = np.asarray(im.convert("RGB"))
        with Image.open(folder.path(kinds["recon"], "recon")) as im:
            recon = np.asarray(im)
        assert np.array_equal(decoded, recon), (codec, quality)
        assert metrics.psnr(photos[image_hash], recon) == pytest.approx(psnr, abs=1e-9)


def test_orphans_are_removed_after_rows_are_removed(saved, tmp_path):
    store = _copy(saved, tmp_path)
    webp = {sha for codec, *_, sha in _artefact_rows(store) if codec == "webp"}
    with sqlite3.connect(store) as db:
        db.execute("DELETE FROM results WHERE codec = 'webp'")
    done = run_cli("store", "clean", "--store", str(store))
    assert done.returncode == 0, done.stderr
    assert "removed 8 files" in done.stdout
    left = _files(store)
    assert len(left) == 8 and not any(name[:64] in webp for name in left)
    with sqlite3.connect(store) as db:  # the rows' artefact records went with them
        assert db.execute("SELECT COUNT(*) FROM artefacts").fetchone()[0] == 8
    # a file no row points to (a run killed between file and row) goes at a run's end
    stray = ArtefactFolder(folder_for(store)).put(b"left by a killed run", "bitstream")
    done = run_cli("run", "--datasets", str(saved.parent / "photos"), "--codecs", "jpeg",
                   "--qualities", "20", "80", "--store", str(store), "--no-progress",
                   "--no-report")
    assert done.returncode == 0, done.stderr
    assert "0 measured" in done.stdout and "removed 1 saved files" in done.stderr
    assert f"{stray}.bin" not in _files(store) and len(_files(store)) == 8


def test_clean_waits_for_no_other_run(saved, tmp_path):
    from harness.artefacts import clean_store
    from harness.store import ResultsStore

    store = _copy(saved, tmp_path)
    with sqlite3.connect(store) as db:
        db.execute("DELETE FROM results WHERE codec = 'webp'")
    with ResultsStore(store) as opened:
        opened.start_run({}, {})  # this process: a run still going on
        cleaned = clean_store(opened)
    assert cleaned.removed == 0 and "still running" in cleaned.skipped
    assert len(_files(store)) == 16


KILLED_WRITE = """
import os, sys, time
from harness.artefacts import ArtefactFolder

def stop(*args):  # the whole file is written under its temporary name: die before the rename
    open(sys.argv[2], "w").close()
    time.sleep(600)

os.replace = stop
ArtefactFolder(sys.argv[1]).put(os.urandom(1 << 20), "recon")
"""


def test_a_killed_write_leaves_no_valid_looking_file(tmp_path):
    folder = tmp_path / "results.artefacts"
    ready = tmp_path / "ready"
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITE, str(folder), str(ready)],
                             env=dict(os.environ))
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert child.poll() is None and time.monotonic() < deadline, "the writer stopped"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    left = [p for p in folder.rglob("*") if p.is_file()]
    assert len(left) == 1 and left[0].stat().st_size == 1 << 20  # complete, yet not valid
    assert not HASH_NAME.match(left[0].name)
    kept = ArtefactFolder(folder)
    assert kept.files() == {}
    cleaned = kept.clean([])
    assert cleaned.temporary == 1 and not any(p.is_file() for p in folder.rglob("*"))


def test_a_row_without_the_files_asked_for_is_measured_again(saved, tmp_path):
    store = _copy(saved, tmp_path)
    shutil.rmtree(folder_for(store))
    done = run_cli("run", "--datasets", str(saved.parent / "photos"), "--codecs", "jpeg",
                   "--qualities", "20", "80", "--save", "recon", "--store", str(store),
                   "--no-progress", "--no-report")
    assert done.returncode == 0, done.stderr
    assert "4 measurements to make" in done.stderr
    assert len(_files(store)) == 4 and all(n.endswith(".png") for n in _files(store))
    with sqlite3.connect(store) as db:  # the new jpeg rows keep recon alone
        kinds = db.execute("SELECT a.kind, COUNT(*) FROM artefacts a JOIN results r USING"
                           " (codec_fingerprint, quality, image_hash) WHERE r.codec = 'jpeg'"
                           " GROUP BY 1").fetchall()
    assert kinds == [("recon", 4)]


def test_save_values_are_checked():
    assert parse_save(["recon", "bitstreams"]) == ("bitstream", "recon")
    assert parse_save("bitstream, recon") == ("bitstream", "recon")
    with pytest.raises(UsageError, match="Did you mean recon"):
        parse_save("recno")
    done = run_cli("run", "--save", "pixels", "--no-progress")
    assert done.returncode == 2 and "--save 'pixels'" in done.stderr
    assert "Traceback" not in done.stderr


# --- the gallery --------------------------------------------------------------------------

def test_busiest_window_is_where_the_codecs_differ():
    original = np.full((128, 160, 3), 100, np.uint8)
    rng = np.random.default_rng(0)
    noise = rng.integers(-3, 4, original.shape)
    first = (original + noise).astype(np.uint8)  # both codecs off by the same everywhere
    second = first.copy()
    second[70:90, 100:120] = 180  # ... but here
    x, y, w, h = busiest_window(original, [first, second], 32)
    assert (w, h) == (32, 32)
    assert x <= 100 and x + w >= 120 and y <= 70 and y + h >= 90
    x, y, _, _ = busiest_window(original, [second], 32)  # one codec: its largest error
    assert x <= 100 and x + 32 >= 120 and y <= 70 and y + 32 >= 90
    assert busiest_window(original, [first], 400) == (0, 0, 160, 128)  # crop > image


def test_report_gallery_shows_crops_with_labels(saved, tmp_path):
    store = _copy(saved, tmp_path)
    out = tmp_path / "report"
    done = run_cli("report", "--store", str(store), "--out", str(out), "--gallery-bpp", "1.5",
                   "--gallery-crop", "128")
    assert done.returncode == 0, done.stderr
    page = (out / "index.html").read_text()
    section = page[page.index('<section id="gallery">'):]
    section = section[:section.index("</section>")]
    assert '<a href="#gallery">Gallery</a>' in page
    manifest = json.loads((out / "report.json").read_text())
    gallery = manifest["gallery"]
    assert [g["image_id"] for g in gallery] == ["a.png", "b.png"]
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT codec, quality, image_hash, bpp, psnr FROM results").fetchall()
    folder = ArtefactFolder(folder_for(store))
    for image in gallery:
        x, y, w, h = image["box"]
        assert (w, h) == (128, 128)
        with Image.open(out / image["original"]) as im:
            assert im.size == (128, 128)
        assert [t["codec"] for t in image["tiles"]] == ["jpeg", "webp"]
        for tile in image["tiles"]:
            mine = [r for r in rows if r[0] == tile["codec"] and r[2] == _hash_of(store, image)]
            nearest = min(mine, key=lambda r: abs(r[3] - 1.5))
            assert (tile["quality"], tile["bpp"], tile["psnr"]) == tuple(nearest[1:2] + nearest[3:])
            label = (f"{tile['codec']}</b><br>q={tile['quality']:g} · {tile['bpp']:.3f} bpp"
                     f" · {tile['psnr']:.2f} dB")
            assert label in section and f'src="{tile["file"]}"' in section
            with Image.open(out / tile["file"]) as im:
                crop = np.asarray(im)
            with Image.open(folder.path(tile["recon"], "recon")) as im:
                recon = np.asarray(im)
            assert np.array_equal(crop, recon[y:y + h, x:x + w])
    assert 'type="range"' in section and "clipPath" in section  # the swipe, plain JS
    assert manifest["files"].count(gallery[0]["original"]) == 1


def _hash_of(store: Path, image: dict) -> str:
    with sqlite3.connect(store) as db:
        return db.execute("SELECT image_hash FROM images WHERE image_id = ?",
                          (image["image_id"],)).fetchone()[0]


def test_a_changed_recon_renders_the_report_again(saved, tmp_path):
    store = _copy(saved, tmp_path)
    out = tmp_path / "report"
    assert run_cli("report", "--store", str(store), "--out", str(out)).returncode == 0
    first = json.loads((out / "report.json").read_text())
    tile = first["gallery"][0]["tiles"][0]
    with sqlite3.connect(store) as db:  # the row now points at another kept image
        other = db.execute("SELECT sha256 FROM artefacts WHERE kind = 'recon' AND sha256 != ?"
                           " LIMIT 1", (tile["recon"],)).fetchone()[0]
        db.execute("UPDATE artefacts SET sha256 = ? WHERE sha256 = ?", (other, tile["recon"]))
    assert run_cli("report", "--store", str(store), "--out", str(out)).returncode == 0
    second = json.loads((out / "report.json").read_text())
    assert second["inputs"] != first["inputs"]
    assert second["gallery"][0]["tiles"][0]["recon"] == other


def test_gallery_of_a_store_without_saves_or_written_before_them(saved, tmp_path):
    store = _copy(saved, tmp_path)
    with sqlite3.connect(store) as db:  # as a store written before --save existed
        db.execute("DROP TABLE artefacts")
    before = store.read_bytes()
    out = tmp_path / "report"
    done = run_cli("report", "--store", str(store), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert store.read_bytes() == before  # read-only: not brought up to date
    page = (out / "index.html").read_text()
    assert '<section id="gallery">' in page and "--save recon" in page
    assert not (out / "gallery").exists()
    done = run_cli("report", "--store", str(saved), "--out", str(tmp_path / "r2"),
                   "--gallery-images", "c.png")
    assert done.returncode == 2 and "no kept reconstruction" in done.stderr
    assert "a.png" in done.stderr and "Traceback" not in done.stderr


def test_no_row_is_written_before_its_files(saved, tmp_path):
    store = tmp_path / "results.sqlite"
    folder_for(store).write_text("a file where the artefacts folder goes")
    done = run_cli("run", "--datasets", str(saved.parent / "photos"), "--codecs", "jpeg",
                   "--qualities", "20", "--save", "recon", "--store", str(store),
                   "--no-progress", "--no-report")
    assert done.returncode == 2, done.stderr
    assert "cannot write a saved recon" in done.stderr and "Traceback" not in done.stderr
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 0


PROBE = """<script>
window.addEventListener("load", function () {
  var box = document.querySelector("#gallery .gimage"), out = [];
  document.querySelectorAll("#gallery img").forEach(function (img) {
    out.push(img.complete && img.naturalWidth > 0 ? "ok" : "broken " + img.src);
  });
  box.querySelectorAll(".tiles figure")[1].click();
  var slider = box.querySelector(".swipe input");
  slider.value = 20;
  slider.dispatchEvent(new Event("input"));
  out.push(box.querySelector(".swipe .over img").getAttribute("src"));
  out.push(box.querySelector(".swipe .over").style.clipPath);
  out.push(box.querySelector(".swipe-name").textContent);
  document.body.setAttribute("data-probe", JSON.stringify(out));
});
</script></body>"""


def test_gallery_page_works_in_headless_chromium(saved, tmp_path):
    browser = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                    if shutil.which(n)), None)
    if browser is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed, but CI must run the browser check")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    out = tmp_path / "report"
    assert run_cli("report", "--store", str(saved), "--out", str(out)).returncode == 0
    probe = out / "probe.html"  # the page with a script that uses it, beside it
    probe.write_text((out / "index.html").read_text().replace("</body>", PROBE))
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
         "--virtual-time-budget=5000", f"--user-data-dir={tmp_path / 'profile'}",
         probe.as_uri()], capture_output=True, text=True, timeout=120)
    assert 'data-gallery-ready="1"' in done.stdout, done.stderr[-2000:]
    found = re.search(r'data-probe="([^"]*)"', done.stdout)
    assert found, done.stderr[-2000:]
    result = json.loads(found.group(1).replace("&quot;", '"'))
    gallery = json.loads((out / "report.json").read_text())["gallery"]
    images = sum(1 + len(g["tiles"]) + 1 for g in gallery)  # original, swipe copy, tiles
    assert result[:-3] == ["ok"] * images
    second = gallery[0]["tiles"][1]
    assert result[-3] == second["file"] and result[-2] == "inset(0px 0px 0px 20%)"
    assert result[-1].startswith(f"{second['codec']} q={second['quality']:g}")
