"""The report's gallery: the same crop of an image from every codec, at about one rate.

It shows the decoded images kept by ``harness run --save recon`` (see
:mod:`harness.artefacts`). For each chosen image (default: the first two of each
dataset that has kept reconstructions), every codec contributes the reconstruction
whose bpp is nearest the target (default 0.5 bpp). The crop (default 256 x 256) is the
window where the codecs differ most: the highest variance across codecs of the per-pixel
error, summed over a block-averaged map (with one codec: its highest squared error).
Crops are PNG files in ``gallery/`` of the report; the page shows them side by side,
labelled with codec, quality, bpp and PSNR, and a swipe against the original.
"""

from __future__ import annotations

import hashlib
import html
import io
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from harness.errors import UsageError

DEFAULT_BPP = 0.5
DEFAULT_CROP = 256
DEFAULT_IMAGES = 2  # per dataset, when no image is named
FOLDER = "gallery"


@dataclass(frozen=True)
class GalleryOptions:
    images: tuple[str, ...] = ()  # IMAGE or DATASET/IMAGE; empty: the first of each dataset
    bpp: float = DEFAULT_BPP
    crop: int = DEFAULT_CROP

    def __post_init__(self):
        if not (isinstance(self.bpp, int | float) and math.isfinite(self.bpp) and self.bpp > 0):
            raise UsageError(f"--gallery-bpp {self.bpp!r}: give a positive number of bits per"
                             " pixel, e.g. 0.5")
        if not isinstance(self.crop, int) or self.crop < 16:
            raise UsageError(f"--gallery-crop {self.crop!r}: give a crop side of at least 16"
                             " pixels, e.g. 256")


@dataclass(frozen=True)
class Tile:
    """One codec's reconstruction of an image: the stored row and its kept file."""

    codec: str
    quality: float
    bpp: float
    psnr: float
    recon: str  # sha256 of the kept PNG


@dataclass
class Pick:
    """An image of the gallery and the tile of every codec."""

    dataset: str
    image_id: str
    image_hash: str
    path: str | None
    tiles: list[Tile] = field(default_factory=list)


def choose(store, rows: Sequence[dict], options: GalleryOptions) -> list[Pick]:
    """The images and reconstructions the gallery shows (cheap: no file is read).

    Only measurements whose decoded image was kept count; of a codec measured under
    several fingerprints, the one of its most recent run.
    """
    kept = store.artefacts()
    if not kept:
        return []
    with_recon = [r for r in rows if not r.get("error") and "recon" in kept.get(
        (r["codec_fingerprint"], float(r["quality"]), r["image_hash"]), {})]
    if not with_recon:
        return []
    from harness.report.runinfo import rows_frame
    from harness.report.tables import latest_fingerprints

    latest = latest_fingerprints(rows_frame(with_recon))
    images: dict[tuple[str, str], list[dict]] = {}
    for row in with_recon:
        if row["codec_fingerprint"] == latest[row["codec"]]:
            images.setdefault((row["dataset"], row["image_id"]), []).append(row)
    chosen = _chosen_images(sorted(images), options.images)
    paths = {}
    for dataset in {d for d, _ in chosen}:
        paths.update({(dataset, i): r.path for i, r in store.known_images(dataset).items()})
    picks = []
    for dataset, image_id in chosen:
        mine = images[(dataset, image_id)]
        pick = Pick(dataset, image_id, mine[0]["image_hash"], paths.get((dataset, image_id)))
        for codec in sorted({r["codec"] for r in mine}):
            best = min((r for r in mine if r["codec"] == codec),
                       key=lambda r: (abs(r["bpp"] - options.bpp), r["bpp"]))
            key = (best["codec_fingerprint"], float(best["quality"]), best["image_hash"])
            pick.tiles.append(Tile(codec, float(best["quality"]), float(best["bpp"]),
                                   float(best["psnr"]), kept[key]["recon"]))
        picks.append(pick)
    return picks


def _chosen_images(available: list[tuple[str, str]], wanted: Sequence[str]
                   ) -> list[tuple[str, str]]:
    if not wanted:
        chosen: list[tuple[str, str]] = []
        for dataset in dict.fromkeys(d for d, _ in available):
            chosen += [a for a in available if a[0] == dataset][:DEFAULT_IMAGES]
        return chosen
    chosen = []
    for name in wanted:
        found = [a for a in available if name in (a[1], f"{a[0]}/{a[1]}")]
        if not found:
            from harness.errors import did_you_mean

            names = [f"{d}/{i}" for d, i in available]
            hint = did_you_mean(name, names + [i for _, i in available])
            raise UsageError(
                f"--gallery-images {name!r}: no kept reconstruction of that image.{hint}"
                f" Images with some (`harness run --save recon` keeps more):"
                f" {', '.join(names[:20])}{' ...' if len(names) > 20 else ''}")
        chosen += [a for a in found if a not in chosen]
    return chosen


def inputs(picks: Sequence[Pick], options: GalleryOptions) -> list:
    """What the gallery shows, for the report's content hash (a changed recon re-renders)."""
    return [asdict(options)] + [asdict(p) for p in picks]


# --- rendering ------------------------------------------------------------------------------

@dataclass
class Shown:
    """An image as the page shows it: the crop box and the files written."""

    pick: Pick
    box: tuple[int, int, int, int]  # x, y, width, height
    original: str  # file, relative to the report folder
    files: list[str]  # one per tile (of ``tiles``)
    tiles: list[Tile]


def render(picks: Sequence[Pick], store_path, report_dir: Path,
           options: GalleryOptions) -> tuple[list[Shown], list[str]]:
    """Write the crops into ``report_dir/gallery``; return what was shown and notes."""
    from PIL import Image

    from harness.artefacts import ArtefactFolder, folder_for
    from harness.errors import ImageLoadError
    from harness.images import load_image
    from harness.report.plots import slug

    folder = ArtefactFolder(folder_for(store_path))
    shown, notes = [], []
    for number, pick in enumerate(picks, 1):
        label = f"{pick.dataset}/{pick.image_id}"
        try:
            original = load_image(pick.path) if pick.path else None
        except (ImageLoadError, OSError):
            original = None
        if original is None or original.content_hash != pick.image_hash:
            notes.append(f"gallery: {label} left out: its original file is gone or changed")
            continue
        tiles, recons = [], []
        for tile in pick.tiles:
            pixels = _read_recon(folder.path(tile.recon, "recon"), tile.recon)
            if pixels is None or pixels.shape != original.pixels.shape:
                notes.append(f"gallery: {label}: the kept reconstruction of {tile.codec} is"
                             " missing or damaged (`harness run --save recon` keeps it again)")
                continue
            tiles.append(tile)
            recons.append(pixels)
        if not tiles:
            continue
        x, y, w, h = box = busiest_window(original.pixels, recons, options.crop)
        where = Path(FOLDER) / f"{number:02d}-{slug(pick.dataset)}-{slug(Path(pick.image_id).stem)}"
        (report_dir / where).mkdir(parents=True, exist_ok=True)
        files = [str(where / "original.png")]
        crops = [original.pixels] + recons
        files += [str(where / f"{i:02d}-{slug(t.codec)}.png") for i, t in enumerate(tiles, 1)]
        for name, pixels in zip(files, crops):
            Image.fromarray(np.ascontiguousarray(pixels[y:y + h, x:x + w])).save(
                report_dir / name, compress_level=1)
        shown.append(Shown(pick, box, files[0], files[1:], tiles))
    return shown, notes


def _read_recon(path: Path, sha256: str) -> np.ndarray | None:
    """The pixels of a kept PNG, or None when it is missing or not what its name says."""
    from PIL import Image

    try:
        data = path.read_bytes()
    except OSError:
        return None
    if hashlib.sha256(data).hexdigest() != sha256:
        return None
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def busiest_window(original: np.ndarray, recons: Sequence[np.ndarray], crop: int
                   ) -> tuple[int, int, int, int]:
    """(x, y, width, height) of the crop where the reconstructions differ most.

    The score of a pixel is the variance across codecs of its error (summed over the
    channels), or the squared error with one codec. Scores are averaged over blocks of
    about crop/32 pixels; the window with the largest sum of block scores wins.
    """
    height, width = original.shape[:2]
    h, w = min(crop, height), min(crop, width)
    total = np.zeros(original.shape, np.float64)
    squares = np.zeros(original.shape, np.float64)
    for recon in recons:
        error = recon.astype(np.float64) - original
        total += error
        squares += error * error
    n = len(recons)
    score = (squares / n - (total / n) ** 2 if n > 1 else squares).sum(axis=2)
    if n > 1 and not score.any():  # every codec made the same image: show its errors
        score = squares.sum(axis=2)
    block = max(1, min(h, w) // 32)
    rows, cols = height // block, width // block
    blocks = score[:rows * block, :cols * block].reshape(rows, block, cols, block).mean((1, 3))
    wh, ww = max(1, h // block), max(1, w // block)
    sums = np.pad(blocks.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    windows = (sums[wh:, ww:] - sums[:-wh, ww:] - sums[wh:, :-ww] + sums[:-wh, :-ww])
    top, left = np.unravel_index(int(np.argmax(windows)), windows.shape)
    return (min(int(left) * block, width - w), min(int(top) * block, height - h), w, h)


# --- the page -------------------------------------------------------------------------------

CSS = """
#gallery .gimage { margin: 10px 0 26px; }
#gallery .gbody { display: flex; flex-wrap: wrap; gap: 10px 24px; align-items: flex-start; }
#gallery .swipe { position: relative; display: inline-block; line-height: 0; }
#gallery .swipe img { width: 512px; max-width: 90vw; image-rendering: pixelated; }
#gallery .swipe .over { position: absolute; inset: 0; clip-path: inset(0 0 0 50%); }
#gallery .swipe input { position: absolute; left: 0; right: 0; bottom: -22px; width: 100%; }
#gallery .swipe-label { margin: 26px 0 8px; font-size: 12px; color: var(--muted, #555); }
#gallery .tiles { display: flex; flex-wrap: wrap; gap: 10px 14px; }
#gallery .tiles figure { cursor: pointer; border: 2px solid transparent; padding: 2px; }
#gallery .tiles figure.on { border-color: var(--accent, #24548f); }
#gallery .tiles img { display: block; image-rendering: pixelated; }
"""

SCRIPT = """
(function () {
  "use strict";
  document.querySelectorAll("#gallery .gimage").forEach(function (box) {
    var over = box.querySelector(".swipe .over"), img = over.querySelector("img");
    var slider = box.querySelector(".swipe input"), label = box.querySelector(".swipe-name");
    slider.addEventListener("input", function () {
      over.style.clipPath = "inset(0 0 0 " + slider.value + "%)";
    });
    box.querySelectorAll(".tiles figure").forEach(function (fig) {
      fig.addEventListener("click", function () {
        box.querySelectorAll(".tiles figure").forEach(function (f) { f.classList.remove("on"); });
        fig.classList.add("on");
        img.src = fig.getAttribute("data-src");
        label.textContent = fig.getAttribute("data-label");
      });
    });
  });
  document.documentElement.setAttribute("data-gallery-ready", "1");
})();
"""


def _e(text) -> str:
    return html.escape(str(text))


def tile_label(tile: Tile) -> str:
    return f"{tile.codec} q={tile.quality:g} · {tile.bpp:.3f} bpp · {tile.psnr:.2f} dB"


def section(shown: Sequence[Shown], options: GalleryOptions) -> str:
    """The ``<section id="gallery">`` of index.html."""
    if not shown:
        body = ("<p class='muted'>No kept reconstructions: run <code>harness run --save"
                " recon</code> to keep the decoded images, then the report shows crops of them"
                " here.</p>")
        return f'<section id="gallery">\n<h2>Gallery</h2>\n{body}\n</section>\n'
    parts = [f"<p class='muted'>For each image, the {options.crop} x {options.crop} crop where"
             " the codecs differ most (largest variance of the per-pixel error across codecs),"
             f" from each codec at its quality nearest {options.bpp:g} bpp; bpp and PSNR are of"
             " the whole image. Drag the slider to swipe between the original (left) and the"
             " codec (right); click a tile to compare it.</p>"]
    for item in shown:
        x, y, w, h = item.box
        first = item.tiles[0]
        figures = "".join(
            f'<figure data-src="{_e(f)}" data-label="{_e(tile_label(t))}"'
            f'{" class=on" if i == 0 else ""}><img src="{_e(f)}" width="{w}" height="{h}"'
            f' alt="{_e(t.codec)}" loading="lazy"><figcaption><b>{_e(t.codec)}</b><br>'
            f"q={t.quality:g} · {t.bpp:.3f} bpp · {t.psnr:.2f} dB</figcaption></figure>"
            for i, (f, t) in enumerate(zip(item.files, item.tiles)))
        parts.append(
            f'<div class="gimage" data-image="{_e(item.pick.dataset)}/{_e(item.pick.image_id)}">'
            f"<h3>{_e(item.pick.dataset)} / {_e(item.pick.image_id)} <span class='muted'>"
            f"— crop at x={x}, y={y}, {w} x {h}</span></h3>"
            f'<div class="gbody"><div><div class="swipe">'
            f'<img src="{_e(item.original)}" alt="original">'
            f'<div class="over"><img src="{_e(item.files[0])}" alt="codec"></div>'
            '<input type="range" min="0" max="100" value="50" aria-label="swipe position">'
            f'</div><p class="swipe-label">left: original · right: <span class="swipe-name">'
            f'{_e(tile_label(first))}</span></p></div><div class="tiles">{figures}</div>'
            "</div></div>")
    return (f'<section id="gallery">\n<h2>Gallery</h2>\n<style>{CSS}</style>\n'
            + "\n".join(parts) + f"\n<script>{SCRIPT}</script>\n</section>\n")


def manifest(shown: Sequence[Shown]) -> list[dict]:
    """The gallery in ``report.json``: images, crop boxes and tiles (inf PSNR as null)."""
    from harness.check import _plain

    return _plain([
        {"dataset": s.pick.dataset, "image_id": s.pick.image_id, "box": list(s.box),
         "original": s.original,
         "tiles": [dict(asdict(t), file=f) for t, f in zip(s.tiles, s.files)]}
        for s in shown])
