import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO / "datasets" / "sample"


@pytest.fixture(scope="session")
def sample_pixels() -> np.ndarray:
    """A real photograph (the embedded sample set's coffee.png)."""
    with Image.open(SAMPLE_DIR / "coffee.png") as im:
        return np.asarray(im.convert("RGB"))


def write_photo_crops(folder: Path, pixels: np.ndarray) -> Path:
    """``folder`` made a dataset of two small real-photo crops (fast to encode)."""
    folder.mkdir()
    Image.fromarray(pixels[:192, :256]).save(folder / "a.png")
    Image.fromarray(pixels[100:292, 200:456]).save(folder / "b.png")
    return folder


@pytest.fixture
def photo_folder(tmp_path, sample_pixels) -> Path:
    """A folder dataset of two small real-photo crops (fast to encode)."""
    return write_photo_crops(tmp_path / "photos", sample_pixels)


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m harness ...` as a user would, in a subprocess."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def stored_rows(store: Path) -> list[tuple]:
    """The store's result rows (key, bytes, time written), sorted by key."""
    with sqlite3.connect(store) as db:
        return db.execute("SELECT codec_fingerprint, quality, image_hash, bytes, created"
                          " FROM results ORDER BY 1, 2, 3").fetchall()


def count_rows(store: Path) -> int:
    """Rows in a store another process may be writing (0 while it cannot be read)."""
    try:
        with sqlite3.connect(store, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def assert_decodes_to_forward(codec, image: np.ndarray, quality=1) -> bytes:
    """Encode and decode ``image``: the decoded uint8 image is the forward pass's
    reconstruction, which also gives a positive estimated rate. The bitstream is returned."""
    data = codec.encode(image, quality)
    decoded = codec.decode(data)
    forward, estimated_bpp = codec.forward(image, quality)
    assert decoded.shape == image.shape and decoded.dtype == np.uint8
    assert np.array_equal(decoded, forward) and estimated_bpp > 0
    return data
