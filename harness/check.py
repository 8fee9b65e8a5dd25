"""``harness check``: is a new checkpoint better or worse than a baseline?

Correctness gates run first, each able to fail the check on its own:

- ``loads-strictly``: every new checkpoint fits its architecture exactly;
- ``decodes-to-forward``: the reconstruction decoded from the bytes matches the
  network's forward output (PSNR between the two at least a tolerance);
- ``deterministic``: two encodes give identical bytes, and a fresh process decodes them;
- ``rate-gap``: the real (payload) rate is within a bound of the estimated one;
- ``finite``: no NaN or inf in rates, reconstructions or metrics;
- ``golden`` (with ``--golden DIR``): bitstreams made earlier decode to the same pixels.

Then the RD comparison (gate ``rd``) against the baseline, per dataset:

- several new points vs a baseline curve: BD-rate and BD-PSNR (pchip by default);
  a regression when BD-rate exceeds ``max_bd_rate`` (percent);
- one new point vs a curve: the PSNR difference at the point's rate and the rate
  difference at its PSNR, interpolated on the baseline as BD does (pchip over log
  rate); outside the baseline's range the verdict is "cannot compare";
- one point vs one point: both differences; a regression when PSNR drops beyond the
  tolerance at a rate that is not lower, or the rate grows beyond it at a PSNR that is
  not higher.

Images whose bpp or PSNR moved beyond a tolerance are listed when the baseline was
measured on the same images (a baseline checkpoint), most changed first.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

from harness import bd
from harness.conventions import MAX_RATE_GAP

PASS, REGRESSION, FAILED_GATE, CANNOT_COMPARE = "pass", "regression", "failed gate", \
    "cannot compare"


@dataclass
class Tolerances:
    max_bd_rate: float = 0.5  # percent
    max_psnr_drop: float = 0.05  # dB
    max_rate_increase: float = 1.0  # percent
    forward_match_db: float = 40.0
    max_rate_gap: float = MAX_RATE_GAP  # percent, payload over estimated rate
    image_psnr: float = 0.1  # dB
    image_bpp: float = 2.0  # percent


@dataclass
class Gate:
    name: str
    passed: bool
    message: str = ""


@dataclass
class Comparison:
    dataset: str
    kind: str  # "curve-vs-curve" | "point-vs-curve" | "point-vs-point"
    verdict: str
    numbers: dict = field(default_factory=dict)
    moved_images: list[dict] = field(default_factory=list)


@dataclass
class CheckReport:
    codec: str
    baseline: str
    method: str
    gates: list[Gate] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    conventions: str = ""  # the rate and aggregation the comparison used

    @property
    def verdict(self) -> str:
        if any(not g.passed for g in self.gates if g.name != "rd"):
            return FAILED_GATE
        verdicts = {c.verdict for c in self.comparisons}
        for verdict in (REGRESSION, CANNOT_COMPARE):
            if verdict in verdicts:
                return verdict
        return PASS

    @property
    def exit_code(self) -> int:
        return 0 if self.verdict == PASS else 1

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "exit_code": self.exit_code, "codec": self.codec,
                "baseline": self.baseline, "method": self.method,
                "conventions": self.conventions,
                "gates": [asdict(g) for g in self.gates],
                "comparisons": [asdict(c) for c in self.comparisons]}


# --- RD comparisons -----------------------------------------------------------------------

def compare_curve(dataset: str, new: tuple, base: tuple, tol: Tolerances,
                  method: str) -> Comparison:
    """Several new points against a baseline curve: BD-rate and BD-PSNR."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", bd.BDWarning)
        rate = bd.bd_rate(*base, *new, method=method)
        quality = bd.bd_psnr(*base, *new, method=method)
    notes = [str(w.message) for w in caught]
    numbers = {"bd_rate_percent": rate, "bd_psnr_db": quality, "notes": notes}
    if math.isnan(rate):
        return Comparison(dataset, "curve-vs-curve", CANNOT_COMPARE, numbers)
    verdict = REGRESSION if rate > tol.max_bd_rate else PASS
    numbers["reason"] = (f"BD-rate {rate:+.3f} % ({method}) against the limit"
                         f" {tol.max_bd_rate:+.3f} %; BD-PSNR {quality:+.4f} dB")
    return Comparison(dataset, "curve-vs-curve", verdict, numbers)


def compare_point_to_curve(dataset: str, point: tuple[float, float], base: tuple,
                           tol: Tolerances, method: str) -> Comparison:
    """One new (bpp, PSNR) point against a baseline curve."""
    bpp, psnr = point
    at_rate = bd.quality_at_rate(*base, bpp, method=method)
    at_psnr = bd.rate_at_quality(*base, psnr, method=method)
    numbers = {"bpp": bpp, "psnr": psnr,
               "baseline_psnr_at_bpp": at_rate, "baseline_bpp_at_psnr": at_psnr}
    if at_rate is None and at_psnr is None:
        numbers["reason"] = (f"the point (bpp {bpp:.4f}, PSNR {psnr:.3f} dB) lies outside the"
                             f" baseline's range (bpp {min(base[0]):.4f}..{max(base[0]):.4f},"
                             f" PSNR {min(base[1]):.3f}..{max(base[1]):.3f} dB)")
        return Comparison(dataset, "point-vs-curve", CANNOT_COMPARE, numbers)
    delta_psnr = None if at_rate is None else psnr - at_rate
    delta_rate = None if at_psnr is None else (bpp / at_psnr - 1) * 100
    numbers.update(delta_psnr_db=delta_psnr, delta_rate_percent=delta_rate)
    worse = ((delta_psnr is not None and delta_psnr < -tol.max_psnr_drop)
             or (delta_rate is not None and delta_rate > tol.max_rate_increase))
    parts = []
    if delta_psnr is not None:
        parts.append(f"PSNR {delta_psnr:+.4f} dB at the same rate (limit"
                     f" -{tol.max_psnr_drop:g} dB)")
    if delta_rate is not None:
        parts.append(f"rate {delta_rate:+.3f} % at the same PSNR (limit"
                     f" +{tol.max_rate_increase:g} %)")
    numbers["reason"] = "; ".join(parts)
    return Comparison(dataset, "point-vs-curve", REGRESSION if worse else PASS, numbers)


def compare_points(dataset: str, new: tuple[float, float], base: tuple[float, float],
                   tol: Tolerances) -> Comparison:
    """One new point against one baseline point."""
    delta_psnr = new[1] - base[1]
    delta_rate = (new[0] / base[0] - 1) * 100
    worse = ((delta_psnr < -tol.max_psnr_drop and delta_rate >= 0)
             or (delta_rate > tol.max_rate_increase and delta_psnr <= 0))
    numbers = {"bpp": new[0], "psnr": new[1], "baseline_bpp": base[0], "baseline_psnr": base[1],
               "delta_psnr_db": delta_psnr, "delta_rate_percent": delta_rate,
               "reason": f"PSNR {delta_psnr:+.4f} dB (limit -{tol.max_psnr_drop:g} dB at a rate"
                         f" not lower), rate {delta_rate:+.3f} % (limit"
                         f" +{tol.max_rate_increase:g} % at a PSNR not higher)"}
    return Comparison(dataset, "point-vs-point", REGRESSION if worse else PASS, numbers)


def moved_images(new_rows: list[dict], base_rows: list[dict], tol: Tolerances) -> list[dict]:
    """Images whose bpp or PSNR moved beyond the per-image tolerances, most changed first."""
    base = {r["image_id"]: r for r in base_rows if r["error"] is None}
    moved = []
    for row in new_rows:
        old = base.get(row["image_id"])
        if old is None or row["error"] is not None:
            continue
        d_psnr = row["psnr"] - old["psnr"]
        d_bpp = (row["bpp"] / old["bpp"] - 1) * 100
        if abs(d_psnr) > tol.image_psnr or abs(d_bpp) > tol.image_bpp:
            moved.append({"image": row["image_id"], "delta_psnr_db": d_psnr,
                          "delta_bpp_percent": d_bpp})
    moved.sort(key=lambda m: max(abs(m["delta_psnr_db"]) / tol.image_psnr,
                                 abs(m["delta_bpp_percent"]) / tol.image_bpp), reverse=True)
    return moved


# --- golden bitstreams ----------------------------------------------------------------------

def pixels_md5(pixels: np.ndarray) -> str:
    return hashlib.md5(np.ascontiguousarray(pixels).tobytes()).hexdigest()


def golden_name(image_id: str) -> str:
    """A file name for ``image_id``'s golden files: readable, and unique for the whole id
    (``a/x.png``, ``b/x.png`` and ``x.jpg`` share a stem)."""
    digest = hashlib.sha256(image_id.encode()).hexdigest()[:12]
    return f"{Path(image_id).stem}-{digest}"


def write_golden(codec, images: list[tuple[str, np.ndarray]], quality, folder: Path) -> None:
    """Bitstreams of ``images`` and the md5 of their decoded pixels, for later checks."""
    folder.mkdir(parents=True, exist_ok=True)
    for image_id, image in images:
        data = codec.encode(image, quality)
        stem = golden_name(image_id)
        (folder / f"{stem}.bin").write_bytes(data)
        (folder / f"{stem}.md5").write_text(pixels_md5(codec.decode(data)) + "\n")


def check_golden(codec, folder: Path) -> Gate:
    bins = sorted(folder.glob("*.bin"))
    if not bins:
        return Gate("golden", False, f"{folder} holds no .bin bitstreams")
    failures = []
    for path in bins:
        expected = path.with_suffix(".md5")
        if not expected.is_file():
            failures.append(f"{path.name}: no {expected.name} beside it")
            continue
        try:
            actual = pixels_md5(codec.decode(path.read_bytes()))
        except Exception as exc:  # a bitstream the new code cannot read is a failure
            failures.append(f"{path.name}: decoding failed ({exc})")
            continue
        if actual != expected.read_text().strip():
            failures.append(f"{path.name}: decoded pixels changed (md5 {actual})")
    if failures:
        return Gate("golden", False, "; ".join(failures))
    return Gate("golden", True, f"{len(bins)} golden bitstreams decode unchanged")


# --- output ---------------------------------------------------------------------------------

def _fmt(value) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def to_text(report: CheckReport) -> str:
    lines = [f"verdict: {report.verdict.upper()} ({report.codec} against {report.baseline})"]
    for c in report.comparisons:
        lines.append(f"  {c.dataset} [{c.kind}] {c.verdict}: {c.numbers.get('reason', '')}")
        for note in c.numbers.get("notes", []):
            lines.append(f"    note: {note}")
        for m in c.moved_images[:10]:
            lines.append(f"    moved: {m['image']}: PSNR {m['delta_psnr_db']:+.3f} dB,"
                         f" bpp {m['delta_bpp_percent']:+.2f} %")
    if report.conventions:
        lines.append(f"  {report.conventions}")
    lines.append("gates:")
    lines.extend(f"  {'ok  ' if g.passed else 'FAIL'} {g.name}: {g.message}"
                 for g in report.gates)
    return "\n".join(lines)


def to_markdown(report: CheckReport) -> str:
    icon = {PASS: "✅", REGRESSION: "❌", FAILED_GATE: "❌", CANNOT_COMPARE: "⚠️"}
    lines = [f"### {icon[report.verdict]} `{report.codec}` vs `{report.baseline}`:"
             f" **{report.verdict}**", "",
             "| dataset | comparison | verdict | ΔPSNR (dB) | Δrate (%) | BD-rate (%) |",
             "|---|---|---|---|---|---|"]
    for c in report.comparisons:
        n = c.numbers
        lines.append(f"| {c.dataset} | {c.kind} | {c.verdict} | {_fmt(n.get('delta_psnr_db'))}"
                     f" | {_fmt(n.get('delta_rate_percent'))} | {_fmt(n.get('bd_rate_percent'))} |")
    if report.conventions:
        lines += ["", report.conventions]
    lines += ["", "| gate | result | detail |", "|---|---|---|"]
    lines += [f"| {g.name} | {'pass' if g.passed else '**fail**'} | {g.message} |"
              for g in report.gates]
    return "\n".join(lines) + "\n"


def to_junit(report: CheckReport) -> str:
    """JUnit XML: one test case per gate (``rd`` holds the RD verdicts)."""
    suite = ElementTree.Element("testsuite", name=f"harness check {report.codec}",
                                tests=str(len(report.gates)),
                                failures=str(sum(not g.passed for g in report.gates)))
    for gate in report.gates:
        case = ElementTree.SubElement(suite, "testcase", classname="harness.check",
                                      name=gate.name)
        if not gate.passed:
            ElementTree.SubElement(case, "failure", message=gate.message[:500]).text = \
                gate.message
        else:
            ElementTree.SubElement(case, "system-out").text = gate.message
    return ElementTree.tostring(suite, encoding="unicode", xml_declaration=True)


def _plain(value):
    """JSON-safe: NaN and inf become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def to_json(report: CheckReport) -> str:
    return json.dumps(_plain(report.to_dict()), indent=2, allow_nan=False, default=str)


def portable_gate(codecs: list, image: np.ndarray) -> Gate:
    """Gate ``portable``: each checkpoint's bytes, written at 1, 2 and all threads, decode
    at every one of them to the same image (up to the synthesis transform's rounding)."""
    from harness.verify import cross_matrix, default_threads, portable_failures

    problems = []
    for spec, codec in codecs:
        try:
            matrix = cross_matrix(spec.name, dict(spec.options), 1, image, default_threads())
        except RuntimeError as exc:  # an encoder process failed
            problems.append(str(exc))
            continue
        problems += portable_failures(codec.name, matrix)
    return Gate("portable", not problems, "; ".join(problems) or
                f"{len(codecs)} checkpoint(s), threads {default_threads()}")
