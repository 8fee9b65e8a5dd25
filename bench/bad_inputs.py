"""Kinds of bad input against the real CLI: each one handled or not.

    python bench/bad_inputs.py [--only SUBSTRING] [--markdown]

Each case builds its input in a fresh temporary folder and runs ``python -m harness``
in a subprocess (60 s limit). A case is HANDLED when the exit status is the one the
README documents for it (2: usage or input error, 1: a run that skipped something or a
failed check), it ends within the limit, and stderr holds no Python traceback. Printed:
one line per case (kind, exit status, seconds, handled, the error's first line), then
the totals; ``--markdown`` prints the table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
PHOTO = REPO / "datasets" / "sample" / "coffee.png"
LIMIT_S = 60
RUN = ("--jobs", "1", "--no-progress", "--no-report")


@dataclass
class Case:
    kind: str
    args: list[str]
    expected: tuple[int, ...] = (2,)
    env: dict | None = None
    after: object = None  # a check on the folder after the run: returns a failure or None


@dataclass
class Outcome:
    case: Case
    code: int | None
    seconds: float
    traceback: bool
    message: str
    failure: str | None

    @property
    def handled(self) -> bool:
        return (self.code in self.case.expected and not self.traceback
                and self.failure is None)


def _photo_folder(root: Path, name: str = "photos") -> Path:
    folder = root / name
    folder.mkdir()
    with Image.open(PHOTO) as im:
        Image.fromarray(np.asarray(im.convert("RGB"))[:96, :128]).save(folder / "good.png")
    return folder


def _with(root: Path, name: str, content: bytes) -> Path:
    folder = _photo_folder(root)
    (folder / name).write_bytes(content)
    return folder


def _random_checkpoint(root: Path) -> Path:
    import torch
    from compressai.zoo import bmshj2018_factorized

    torch.manual_seed(0)
    net = bmshj2018_factorized(quality=1, pretrained=False)
    path = root / "random.pth"
    torch.save(net.state_dict(), path)
    return path


def _nan_checkpoint(root: Path) -> Path:
    import torch

    state = torch.load(_random_checkpoint(root), weights_only=True)
    state["g_a.0.weight"] = torch.full_like(state["g_a.0.weight"], float("nan"))
    path = root / "nan.pth"
    torch.save(state, path)
    return path


def _torchscript(root: Path) -> Path:
    import torch

    path = root / "scripted.pth"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    return path


def _other_architecture(root: Path) -> Path:
    import torch
    from compressai.zoo import mbt2018

    path = root / "mbt2018.pth"
    torch.save(mbt2018(quality=1, pretrained=False).state_dict(), path)
    return path


def _foreign_sqlite(root: Path) -> Path:
    path = root / "theirs.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE accounts (id INTEGER, name TEXT)")
        db.execute("INSERT INTO accounts VALUES (1, 'x')")
    return path


def _unchanged(path: Path):
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    names = sorted(p.name for p in path.parent.iterdir())

    def check(_root: Path) -> str | None:
        if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            return f"{path.name} was modified"
        if sorted(p.name for p in path.parent.iterdir()) != names:
            return "files appeared beside it"
        return None
    return check


def _name_escaped(report: Path):
    def check(_root: Path) -> str | None:
        page = (report / "index.html").read_text(encoding="utf-8")
        latex = "\n".join(p.read_text() for p in (report / "tables").glob("*.tex"))
        if "%<script>" in page:
            return "the name reached index.html unescaped"
        if "a}\\end{tabular}" in latex:
            return "the name reached a LaTeX table unescaped"
        return None
    return check


def _curve_file(root: Path, name: str, results: dict | str) -> Path:
    path = root / name
    text = results if isinstance(results, str) else json.dumps(
        {"name": "mine", "results": results})
    path.write_text(text)
    return path


def _zip_of_zeros(root: Path) -> Path:
    """A 64 KiB file that inflates to 64 MiB (a small decompression bomb)."""
    path = root / "bomb.pth"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", b"\0" * (64 << 20))
    return path


def cases(root: Path) -> list[Case]:
    """Every kind tried (inputs built under ``root``, one folder per case)."""
    def box(name: str) -> Path:
        folder = root / name
        folder.mkdir()
        return folder

    jpeg = ["run", "--codecs", "jpeg", "--qualities", "50", *RUN]
    found: list[Case] = []

    def add(kind, args, expected=(2,), env=None, after=None):
        found.append(Case(kind, [str(a) for a in args], expected, env, after))

    def folder_run(kind, name, content, expected=(1,)):
        folder = _with(box(kind.replace(" ", "_")), name, content)
        add(kind, [*jpeg, "--datasets", folder, "--store", folder.parent / "s.sqlite"], expected)

    folder_run("corrupt PNG among good images", "bad.png",
               PHOTO.read_bytes()[:200] + b"\0" * 500)
    folder_run("truncated JPEG", "cut.jpg", b"\xff\xd8\xff\xe0" + b"\0" * 100)
    folder_run("zero-byte image", "empty.png", b"")
    folder_run("text file named .png", "note.png", b"hello, not an image\n")
    folder_run("PNG of 1 x 1 pixels (valid: measured)", "dot.png",
               _png_bytes(np.zeros((1, 1, 3), np.uint8)), expected=(0,))

    fifo_root = box("fifo")
    folder = _photo_folder(fifo_root)
    os.mkfifo(folder / "pipe.png")
    add("FIFO named pipe.png in a folder", [*jpeg, "--datasets", folder, "--store",
                                             fifo_root / "s.sqlite"], (1,))
    zero_root = box("devzero")
    folder = _photo_folder(zero_root)
    os.symlink("/dev/zero", folder / "zero.png")
    # links leading out of the folder are skipped with a note (README, Guarantees)
    add("symlink to /dev/zero in a folder", [*jpeg, "--datasets", folder, "--store",
                                              zero_root / "s.sqlite"], (0,))
    slash_root = box("slash")
    folder = _photo_folder(slash_root)
    os.symlink("/", folder / "everything")
    add("symlink to / in a folder", [*jpeg, "--datasets", folder, "--store",
                                      slash_root / "s.sqlite"], (0,))
    empty = box("empty") / "nothing"
    empty.mkdir()
    add("empty folder as a dataset", [*jpeg, "--datasets", empty, "--store",
                                       empty.parent / "s.sqlite"])
    add("unknown dataset name", [*jpeg, "--datasets", "kodakk", "--store", root / "u.sqlite"])
    data_file = root / "not-a-dir"
    data_file.write_text("x")
    add("HARNESS_DATA pointing at a file",
        [*jpeg, "--datasets", "kodak", "--store", root / "h.sqlite"],
        env={"HARNESS_DATA": str(data_file)})

    sample = ["--datasets", "sample", "--store", root / "q.sqlite"]
    run_jpeg = ["run", "--codecs", "jpeg", *RUN, *sample]
    add("--qualities inf", [*run_jpeg, "--qualities", "inf"])
    add("--qualities nan", [*run_jpeg, "--qualities", "nan"])
    add("--qualities out of the codec's range", [*run_jpeg, "--qualities", "1000"])
    add("--timeout -5", [*run_jpeg, "--qualities", "50", "--timeout", "-5"])
    add("--timeout 0", [*run_jpeg, "--qualities", "50", "--timeout", "0"])
    add("--timeout nan", [*run_jpeg, "--qualities", "50", "--timeout", "nan"])
    add("--jobs 0", [*run_jpeg[:-len(sample)], "--qualities", "50", "--jobs", "0", *sample])
    add("--scheduler junk", [*run_jpeg, "--qualities", "50", "--scheduler", "junk"])
    add("unknown codec", ["run", "--codecs", "jpgg", *RUN, *sample])

    models = box("models")
    checkpoint = _random_checkpoint(models)
    # in a run, a codec that cannot be built is skipped and named: exit 1 (README)
    learned = ["run", "--codecs", "bmshj2018-factorized", *RUN, "--datasets", "sample",
               "--store", models / "l.sqlite"]
    add("--device bogus (learned codec)", [*learned, "--checkpoint", checkpoint,
                                           "--device", "bogus"], (1,))
    text_ckpt = models / "text.pth"
    text_ckpt.write_text("not a checkpoint\n")
    add("checkpoint that is a text file", [*learned, "--checkpoint", text_ckpt], (1,))
    add("TorchScript archive as checkpoint", [*learned, "--checkpoint", _torchscript(models)],
        (1,))
    add("checkpoint of another architecture", [*learned, "--checkpoint",
                                               _other_architecture(models)], (1,))
    add("checkpoint with NaN weights", [*learned, "--checkpoint", _nan_checkpoint(models)],
        (1,))
    add("checkpoint over the size cap", [*learned, "--checkpoint", checkpoint],
        env={"HARNESS_MAX_CHECKPOINT_BYTES": "1000"}, expected=(1,))
    add("missing checkpoint file", [*learned, "--checkpoint", models / "nope.pth"], (1,))
    add("checkpoint that is a zip of 64 MiB of zeros", [*learned, "--checkpoint",
                                                       _zip_of_zeros(models)], (1,))

    foreign = _foreign_sqlite(box("foreign"))
    add("foreign SQLite file as --store (report)",
        ["report", "--store", foreign, "--out", foreign.parent / "out"],
        after=_unchanged(foreign))
    junk_store = box("junkstore") / "store.sqlite"
    junk_store.write_bytes(b"this is not sqlite" * 100)
    add("non-SQLite file as --store (run)", [*jpeg, "--datasets", "sample", "--store",
                                              junk_store], after=_unchanged(junk_store))
    add("missing store (report)", ["report", "--store", root / "none.sqlite",
                                   "--out", root / "none-out"])

    imports = box("imports")
    store = imports / "s.sqlite"
    add("import: string values", ["import", "--store", store, "--dataset", "kodak",
                                  _curve_file(imports, "s.json",
                                              {"bpp": ["a", "b"], "psnr-rgb": [30, 31]})])
    add("import: NaN values", ["import", "--store", store, "--dataset", "kodak",
                               _curve_file(imports, "n.json",
                                           '{"name": "m", "results": {"bpp": [NaN, 0.5],'
                                           ' "psnr-rgb": [30, 31]}}')])
    add("import: malformed JSON", ["import", "--store", store, "--dataset", "kodak",
                                   _curve_file(imports, "m.json", '{"name": "m", "res')])
    add("import: lists of different lengths",
        ["import", "--store", store, "--dataset", "kodak",
         _curve_file(imports, "l.json", {"bpp": [0.1, 0.2, 0.3], "psnr-rgb": [30, 31]})])
    add("import: an infinite PSNR (the point is dropped, said)",
        ["import", "--store", store, "--dataset", "kodak",
         _curve_file(imports, "i.json", '{"name": "inf", "results": {"bpp": [0.1, 0.2],'
                     ' "psnr-rgb": [1e999, 31]}}')], (0,))
    add("import: a LaTeX- and HTML-breaking name (valid)",
        ["import", "--store", store, "--dataset", "kodak",
         _curve_file(imports, "x.json", json.dumps(
             {"name": "a}\\end{tabular}%<script>", "results": {
                 "bpp": [0.1, 0.25, 0.5, 1.0], "psnr-rgb": [27, 29, 32, 35]}}))], (0,))
    add("report of the store holding that name",
        ["report", "--store", store, "--out", imports / "report"], (0,),
        after=_name_escaped(imports / "report"))
    add("bd --anchor nosuch", ["bd", "--published", "vtm", "--datasets", "kodak",
                               "--anchor", "nosuch", "--store", store])
    add("bd --published nosuch", ["bd", "--published", "nosuch", "--datasets", "kodak",
                                  "--store", store])
    add("bd --datasets nosuch", ["bd", "--datasets", "nosuch", "--store", store])
    add("bd --method junk", ["bd", "--published", "vtm", "--datasets", "kodak",
                             "--method", "junk", "--store", store])

    check = ["check", "bmshj2018-factorized", "--checkpoints", checkpoint, "--baseline",
             checkpoint, "--datasets", "sample", "--store", models / "c.sqlite", "--no-progress"]
    add("check --gate-images 0", [*check, "--gate-images", "0"])
    add("check --junit into a missing folder", [*check, "--junit", root / "missing" / "x.xml"])
    add("check --baseline nosuch.json", [*check[:4], "--baseline", root / "nosuch.json",
                                         *check[6:]])
    add("verify --images 0", ["verify", "bmshj2018-factorized", "--checkpoint", checkpoint,
                              "--images", "0"])
    add("verify of an unknown codec", ["verify", "nosuch", "--checkpoint", checkpoint])
    add("unknown subcommand", ["frobnicate"])
    return found


def _png_bytes(pixels: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def attempt(case: Case, root: Path) -> Outcome:
    env = dict(os.environ, **(case.env or {}))
    env.setdefault("HARNESS_DATA", str(root / "data"))
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "harness", *case.args], cwd=root,
                              env=env, capture_output=True, text=True, timeout=LIMIT_S)
        code, stderr = done.returncode, done.stderr
    except subprocess.TimeoutExpired as expired:
        code, stderr = None, (expired.stderr or b"").decode(errors="replace")
    seconds = time.perf_counter() - start
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    message = next((line for line in lines if "error" in line.lower()), lines[0] if lines
                   else "")
    failure = case.after(root) if case.after else None
    return Outcome(case, code, seconds, "Traceback (most recent call last)" in stderr,
                   message, failure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run the kinds containing this text")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    outcomes = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for case in cases(root):
            if args.only in case.kind:
                outcome = attempt(case, root)
                outcomes.append(outcome)
                print(f"{'ok ' if outcome.handled else 'NOT'} {case.kind:45s} exit"
                      f" {outcome.code}  {outcome.seconds:5.1f} s  {outcome.message[:90]}"
                      + (f"  [{outcome.failure}]" if outcome.failure else ""), flush=True)
    handled = sum(o.handled for o in outcomes)
    print(f"{len(outcomes)} kinds tried, {handled} handled")
    if args.markdown:
        print("\n| kind | exit | s | handled | message |\n|---|---|---|---|---|")
        for o in outcomes:
            text = (o.failure or o.message)[:80].replace("|", "\\|")
            print(f"| {o.case.kind} | {o.code} | {o.seconds:.1f} |"
                  f" {'yes' if o.handled else '**no**'} | {text} |")


if __name__ == "__main__":
    main()
