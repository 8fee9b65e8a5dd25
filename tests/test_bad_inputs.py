"""Bad inputs end to end: one folder holding every kind, measured by the real CLI.

Each bad file is reported with a message saying what is wrong (or, for images that can
be converted, what was done), and the good images are measured all the same.
"""

import os
import struct
import zlib

import numpy as np
from PIL import Image

from tests.conftest import run_cli


def _png_header_only(path, width, height):
    """A PNG whose header claims width x height (no real pixel data)."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def test_a_folder_of_bad_inputs(tmp_path, sample_pixels):
    folder = tmp_path / "bad inputs"
    folder.mkdir()
    photo = sample_pixels[:180, :200]
    Image.fromarray(photo).save(folder / "good.png")
    Image.fromarray(photo).save(folder / "ünïcode name with spaces.png")
    good_bytes = (folder / "good.png").read_bytes()
    (folder / "zero.png").write_bytes(b"")
    (folder / "truncated.png").write_bytes(good_bytes[: len(good_bytes) // 2])
    corrupt = bytearray(good_bytes)
    corrupt[-40] ^= 0xFF  # inside the last IDAT: its CRC no longer matches
    (folder / "bad_crc.png").write_bytes(bytes(corrupt))
    (folder / "notes.png").write_text("this is not an image\n")
    _png_header_only(folder / "bomb.png", 20000, 20000)
    Image.fromarray(photo[:1, :1]).save(folder / "one_pixel.png")
    Image.fromarray(photo[..., 0].astype(np.uint16) * 257).save(folder / "gray16.png")
    Image.fromarray(photo).convert("P").save(folder / "palette.png")
    Image.fromarray(photo).convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(np.dstack([photo, np.full(photo.shape[:2], 128, np.uint8)])).save(
        folder / "rgba.png")
    Image.fromarray(photo[..., 1]).save(folder / "gray.png")
    os.symlink(folder, folder / "loop")  # a symlink loop must not hang the walk

    store = tmp_path / "r.sqlite"
    done = run_cli("run", "--datasets", str(folder), "--codecs", "jpeg", "--qualities", "50",
                   "--jobs", "2", "--store", str(store), "--no-progress", "--no-report")
    err = done.stderr
    assert done.returncode == 1  # finished, with images skipped
    assert "Traceback" not in err
    expected_errors = {
        "zero.png": "empty",
        "truncated.png": "truncated",
        "bad_crc.png": "CRC",
        "notes.png": "not an image",
        "bomb.png": "pixels",
    }
    for name, words in expected_errors.items():
        line = next((x for x in err.splitlines() if "image skipped: folder:bad inputs-" in x
                     and f"/{name}:" in x), None)
        assert line is not None, f"no error line for {name}:\n{err}"
        assert words.lower() in line.lower(), line
    expected_warnings = {"gray16.png": "16-bit", "palette.png": "palette", "cmyk.jpg": "CMYK",
                         "rgba.png": "alpha", "gray.png": "grayscale"}
    for name, words in expected_warnings.items():
        line = next((x for x in err.splitlines() if x.startswith("warning:") and name in x), "")
        assert words.lower() in line.lower(), f"{name}: {line!r}"
    table = [x for x in done.stdout.splitlines() if x.startswith("folder:bad inputs-")]
    assert table and " 8 " in table[0]  # 2 good + 1 one-pixel + 5 converted images measured
    # the one-pixel image is measured, its MS-SSIM left out with the reason
    import sqlite3

    with sqlite3.connect(store) as db:
        notes = [n for (n,) in db.execute("SELECT note FROM results WHERE width = 1")]
    assert notes and "MS-SSIM needs both sides" in notes[0]


def test_a_folder_without_images(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "readme.txt").write_text("no pictures here")
    done = run_cli("run", "--datasets", str(folder), "--store", str(tmp_path / "r.sqlite"))
    assert done.returncode == 2
    assert f"No images found in folder {folder}" in done.stderr
    assert "Traceback" not in done.stderr


def test_special_files_in_a_folder_are_skipped_with_a_reason(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (32, 32), (10, 200, 30)).save(folder / "a.png")
    os.mkfifo(folder / "pipe.png")
    (folder / "zero.png").symlink_to("/dev/zero")
    args = ["run", "--datasets", str(folder), "--codecs", "jpeg", "--qualities", "50",
            "--store", str(tmp_path / "r.sqlite"), "--no-report", "--no-progress"]
    done = run_cli(*args, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "pipe.png: not a regular file" in done.stderr
    assert "zero.png: a link to a file outside" in done.stderr
    followed = run_cli(*args, "--follow-symlinks", timeout=120)
    assert "zero.png: not a regular file" in followed.stderr
    assert "Traceback" not in done.stderr + followed.stderr
