"""Bjøntegaard-delta metrics: BD-rate and BD-PSNR (BD-quality) between two RD curves.

A curve is a set of (rate, quality) points. The rate may be in any unit (bpp, kbps,
bytes): only its logarithm enters, so the unit cancels. The quality must be "higher is
better": PSNR in dB, MS-SSIM *in dB*, and so on.

* BD-rate interpolates log10(rate) as a function of quality on each curve and averages
  the difference over the overlap of the two quality ranges. The result is in percent;
  negative means the test curve needs fewer bits for the same quality.
* BD-PSNR interpolates quality as a function of log10(rate) and averages the difference
  over the overlap of the two log-rate ranges. The result is in the quality unit (dB);
  positive means the test curve has higher quality at the same rate.

Interpolation methods (``METHODS``):

* ``"pchip"`` (default): piecewise cubic Hermite through every point with Fritsch-Carlson
  shape-preserving slopes and the three-point end rule, as in the JCT-VC/JVET CTC
  spreadsheets. With 2 points it is the straight line.
* ``"akima"``: piecewise cubic Hermite with Akima (1970) slopes (the original ``akima``
  weights, not ``makima``); the secants are extended by two linear extrapolations at each
  end. With 2 points it is the straight line.
* ``"cubic"``: one third-order polynomial per curve, least-squares fitted (exact through 4
  points), as in VCEG-M33. Needs at least 4 points.

Guards (each refusal carries a short machine-readable ``code`` beside its message,
on :class:`BDInputError` and :class:`BDWarning` alike):

* ``non-monotonic``: BD-rate interpolates log rate over quality, so every method
  (cubic too) needs quality strictly increasing with rate; BD-PSNR interpolates over
  log rate and accepts any quality;
* ``close-rates``: two rates of one curve closer than ``min_spacing`` (relative, default
  ``MIN_RATE_SPACING`` = 0.5 %) make every interpolant swing between them;
* ``low-overlap``: when the two curves share less than ``min_overlap`` (default
  ``MIN_OVERLAP`` = 20 %) of the test curve's range, the value is NaN (``no-overlap``
  when they share nothing); above it but below 100 % the value is given with a
  ``partial-overlap`` warning;
* ``too-few-points`` and ``bad-input`` for the rest.

MS-SSIM: BD computations on MS-SSIM use MS-SSIM in dB, ``-10*log10(1 - MS-SSIM)``, as
learned-compression papers do. The functions here do not convert: callers pass dB
values, for instance through :func:`msssim_to_db`. BD-rate depends on the quality scale
(the average is taken over the quality axis), so record which scale was used.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Sequence

import numpy as np

from harness.conventions import METHODS, MIN_OVERLAP, MIN_RATE_SPACING  # noqa: F401
from harness.errors import UsageError

__all__ = [
    "METHODS",
    "BDInputError",
    "BDWarning",
    "bd_psnr",
    "bd_rate",
    "bd_rate_many",
    "msssim_to_db",
]

_MIN_POINTS = {"pchip": 2, "akima": 2, "cubic": 4}
_AKIMA_BREAK = 1e-9


class BDWarning(UserWarning):
    """A BD value is undefined (NaN) or covers less than the test curve's range."""

    def __init__(self, message: str, code: str = "partial-overlap"):
        super().__init__(message)
        self.code = code


class BDInputError(UsageError, ValueError):
    """RD points or options that a BD metric cannot be computed from."""

    def __init__(self, message: str, code: str = "bad-input"):
        super().__init__(message)
        self.code = code


def msssim_to_db(x):
    """Convert MS-SSIM to dB: ``-10 * log10(1 - x)``.

    Args:
        x: MS-SSIM value(s), a number or an array-like; each must be finite and below 1.

    Returns:
        A float for a scalar input, otherwise a numpy array of the same shape.

    Raises:
        BDInputError: if a value is not finite or is 1 or more (no finite dB value).

    >>> round(msssim_to_db(0.99), 9)
    20.0
    """
    arr = np.asarray(x, dtype=float)
    bad = ~np.isfinite(arr) | (arr >= 1.0)
    if np.any(bad):
        value = arr.reshape(-1)[int(np.argmax(bad.reshape(-1)))]
        raise BDInputError(
            f"MS-SSIM value {float(value)!r} has no finite dB value; "
            "MS-SSIM must be finite and below 1"
        )
    db = -10.0 * np.log10(1.0 - arr)
    return float(db) if db.ndim == 0 else db


def bd_rate(
    anchor_rate: Sequence[float],
    anchor_quality: Sequence[float],
    test_rate: Sequence[float],
    test_quality: Sequence[float],
    method: str = "pchip",
    *,
    min_spacing: float = MIN_RATE_SPACING,
    min_overlap: float = MIN_OVERLAP,
) -> float:
    """Bjøntegaard-delta rate of the test curve against the anchor curve, in percent.

    log10(rate) is interpolated as a function of quality on each curve with ``method``;
    the mean difference Δ over the overlap of the two quality ranges gives
    ``(10**Δ - 1) * 100``. Negative values mean the test curve saves rate.

    Points may be given in any order; each curve is sorted by rate. The curves may have
    different numbers of points.

    Agreement: the value equals ``bjontegaard.bd_rate(anchor_rate, anchor_quality,
    test_rate, test_quality, method, require_matching_points=False)`` from the
    ``bjontegaard`` package 1.3.x (its default ``interpolators=False``; its
    ``min_overlap`` only controls a warning) for points sorted by rate, to within 1e-6
    (about 1e-12 for pchip/akima, about 1e-10 on realistic curves for the less
    well-conditioned cubic fit; it uses scipy's ``PchipInterpolator``,
    ``Akima1DInterpolator(method="akima")`` with its linear 2-point case, and
    ``np.polyfit`` degree 3 for ``cubic``). What differs is only what is refused or
    warned about:

    * cubic with fewer than 4 points (or fewer than 4 distinct qualities) is refused
      here; ``bjontegaard`` returns an underdetermined fit;
    * duplicate rates, non-finite values and non-positive rates are refused here;
    * unsorted points are sorted by rate here (``bjontegaard`` only reverses
      descending input and fails on other orders for pchip/akima);
    * its ``min_overlap`` warning (overlap/union below 0.75) is not issued; instead a
      :class:`BDWarning` says when the anchor does not cover the test curve's range.

    Args:
        anchor_rate: Rates of the anchor (reference) curve, all positive, any unit.
        anchor_quality: Qualities of the anchor curve (PSNR dB, MS-SSIM dB, ...).
        test_rate: Rates of the test curve, in the same unit as ``anchor_rate``.
        test_quality: Qualities of the test curve, in the same unit as ``anchor_quality``.
        method: One of ``METHODS``: ``"pchip"`` (default), ``"akima"`` or ``"cubic"``.

    Returns:
        BD-rate in percent, or NaN (with a :class:`BDWarning`) when the quality ranges
        of the two curves do not overlap.

    Raises:
        BDInputError: unknown method; lengths that differ within a curve; too few points
            for the method; NaN or infinite values; non-positive or duplicate rates;
            for pchip/akima, quality that does not increase strictly with rate (the
            curve is never re-sorted by quality or pareto-filtered).

    Warns:
        BDWarning: the curves do not overlap (result NaN), or the anchor's quality range
            does not cover the test curve's (the average is over the overlap only).

    Example:
        >>> anchor_rate, quality = [0.1, 0.2, 0.4, 0.8], [30.0, 33.0, 36.0, 39.0]
        >>> test_rate = [r * 0.8 for r in anchor_rate]
        >>> round(bd_rate(anchor_rate, quality, test_rate, quality), 9)
        -20.0
    """
    method = _check_method(method)
    anchor = _curve("anchor", anchor_rate, anchor_quality, method, min_spacing)
    test = _curve("test", test_rate, test_quality, method, min_spacing)
    for name, (rate, quality) in (("anchor", anchor), ("test", test)):
        _check_quality_axis(name, rate, quality, method)
    delta = _mean_difference(
        np.log10(anchor[0]), anchor[1], np.log10(test[0]), test[1],
        x_is_rate=False, method=method, metric="BD-rate", min_overlap=min_overlap,
    )
    return float((10.0**delta - 1.0) * 100.0)


def bd_rate_many(anchor_rate, anchor_quality, test_rate, test_quality, method: str = "pchip",
                 *, min_spacing: float = MIN_RATE_SPACING,
                 min_overlap: float = MIN_OVERLAP) -> np.ndarray:
    """:func:`bd_rate` of many curve pairs at once: row ``i`` of each 2-D array (pairs x
    points) is one pair. NaN where :func:`bd_rate` would refuse the pair or return NaN
    (its guards, no overlap); no warnings. Vectorised for pchip, the default (a bootstrap
    interval needs a thousand BD-rates); other methods call :func:`bd_rate` per row."""
    method = _check_method(method)
    rows = [np.atleast_2d(np.asarray(a, dtype=float))
            for a in (anchor_rate, anchor_quality, test_rate, test_quality)]
    if method != "pchip" or min(a.shape[1] for a in rows) < _MIN_POINTS[method]:
        out = np.full(len(rows[0]), math.nan)
        for i, pair in enumerate(zip(*rows)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", BDWarning)
                with contextlib.suppress(BDInputError):
                    out[i] = bd_rate(*pair, method=method, min_spacing=min_spacing,
                                     min_overlap=min_overlap)
        return out
    with np.errstate(all="ignore"):  # refused rows compute garbage, masked at the end
        (ar, aq), (tr, tq) = (_by_rate(*rows[:2]), _by_rate(*rows[2:]))
        valid = _usable(ar, aq, min_spacing) & _usable(tr, tq, min_spacing)
        lo = np.maximum(aq.min(axis=1), tq.min(axis=1))
        hi = np.minimum(aq.max(axis=1), tq.max(axis=1))
        covered = (aq.min(axis=1) <= tq.min(axis=1)) & (aq.max(axis=1) >= tq.max(axis=1))
        share = (hi - lo) / (tq.max(axis=1) - tq.min(axis=1))
        valid &= (hi > lo) & (covered | (share >= min_overlap))
        integrals = [_hermite_integral(q, np.log10(r), _pchip_slopes(q, np.log10(r)), lo, hi)
                     for r, q in ((tr, tq), (ar, aq))]
        delta = (integrals[0] - integrals[1]) / (hi - lo)
        return np.where(valid, (10.0**delta - 1.0) * 100.0, math.nan)


def _by_rate(rate: np.ndarray, quality: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's points sorted by rate."""
    order = np.argsort(rate, axis=1, kind="stable")
    return np.take_along_axis(rate, order, 1), np.take_along_axis(quality, order, 1)


def _usable(rate: np.ndarray, quality: np.ndarray, min_spacing: float) -> np.ndarray:
    """Per row (sorted by rate): what :func:`bd_rate`'s guards accept."""
    return (np.isfinite(rate).all(axis=1) & np.isfinite(quality).all(axis=1)
            & (rate > 0).all(axis=1) & (np.diff(rate, axis=1) > 0).all(axis=1)
            & (rate[:, 1:] / rate[:, :-1] - 1.0 >= min_spacing).all(axis=1)
            & (np.diff(quality, axis=1) > 0).all(axis=1))


def bd_psnr(
    anchor_rate: Sequence[float],
    anchor_quality: Sequence[float],
    test_rate: Sequence[float],
    test_quality: Sequence[float],
    method: str = "pchip",
    *,
    min_spacing: float = MIN_RATE_SPACING,
    min_overlap: float = MIN_OVERLAP,
) -> float:
    """Bjøntegaard-delta quality (BD-PSNR) of the test curve against the anchor curve.

    Quality is interpolated as a function of log10(rate) on each curve with ``method``
    and the difference is averaged over the overlap of the two log-rate ranges. The
    result is in the quality's unit (dB for PSNR and MS-SSIM dB); positive values mean
    the test curve has higher quality at the same rate. Quality need not be monotonic.

    Points may be given in any order; each curve is sorted by rate. The curves may have
    different numbers of points.

    Agreement: the value equals ``bjontegaard.bd_psnr(anchor_rate, anchor_quality,
    test_rate, test_quality, method, require_matching_points=False)`` from
    ``bjontegaard`` 1.3.x for points sorted by rate, to within 1e-6; the differences in
    what is refused or warned about are those listed under :func:`bd_rate`.

    Args:
        anchor_rate: Rates of the anchor (reference) curve, all positive, any unit.
        anchor_quality: Qualities of the anchor curve (PSNR dB, MS-SSIM dB, ...).
        test_rate: Rates of the test curve, in the same unit as ``anchor_rate``.
        test_quality: Qualities of the test curve, in the same unit as ``anchor_quality``.
        method: One of ``METHODS``: ``"pchip"`` (default), ``"akima"`` or ``"cubic"``.

    Returns:
        BD-PSNR in quality units, or NaN (with a :class:`BDWarning`) when the rate
        ranges of the two curves do not overlap.

    Raises:
        BDInputError: unknown method; lengths that differ within a curve; too few points
            for the method; NaN or infinite values; non-positive or duplicate rates.

    Warns:
        BDWarning: the curves do not overlap (result NaN), or the anchor's rate range
            does not cover the test curve's (the average is over the overlap only).
    """
    method = _check_method(method)
    anchor = _curve("anchor", anchor_rate, anchor_quality, method, min_spacing)
    test = _curve("test", test_rate, test_quality, method, min_spacing)
    delta = _mean_difference(
        np.log10(anchor[0]), anchor[1], np.log10(test[0]), test[1],
        x_is_rate=True, method=method, metric="BD-PSNR", min_overlap=min_overlap,
    )
    return float(delta)


def quality_at_rate(rate: Sequence[float], quality: Sequence[float], at_rate: float,
                    method: str = "pchip") -> float | None:
    """The curve's quality at ``at_rate``, interpolated over log rate as BD does.

    Returns None when ``at_rate`` lies outside the curve's rate range (no extrapolation).
    """
    method = _check_method(method)
    r, q = _curve("baseline", rate, quality, method)
    return _evaluate(np.log10(r), q, math.log10(at_rate), method)


def rate_at_quality(rate: Sequence[float], quality: Sequence[float], at_quality: float,
                    method: str = "pchip") -> float | None:
    """The curve's rate at ``at_quality`` (log rate interpolated over quality, as BD-rate).

    Returns None outside the curve's quality range.
    """
    method = _check_method(method)
    r, q = _curve("baseline", rate, quality, method)
    _check_quality_axis("baseline", r, q, method)
    value = _evaluate(q, np.log10(r), at_quality, method)
    return None if value is None else float(10.0**value)


def _evaluate(x: np.ndarray, y: np.ndarray, at: float, method: str) -> float | None:
    """The interpolant of (x, y) at ``at``, or None outside [min x, max x]."""
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    if not x[0] <= at <= x[-1]:
        return None
    if method == "cubic":
        return float(np.polynomial.Polynomial.fit(x, y, 3)(at))
    d = _pchip_slopes(x, y) if method == "pchip" else _akima_slopes(x, y)
    k = int(min(np.searchsorted(x, at, side="right") - 1, len(x) - 2))
    h = x[k + 1] - x[k]
    delta = (y[k + 1] - y[k]) / h
    c2 = (3.0 * delta - 2.0 * d[k] - d[k + 1]) / h
    c3 = (d[k] - 2.0 * delta + d[k + 1]) / h**2
    s = at - x[k]
    return float(y[k] + s * (d[k] + s * (c2 + s * c3)))


def _check_method(method: object) -> str:
    if not isinstance(method, str) or method not in METHODS:
        expected = ", ".join(repr(m) for m in METHODS)
        raise BDInputError(f"unknown BD method {method!r}; expected one of {expected}")
    return method


def _as_vector(name: str, what: str, values: object) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise BDInputError(f"{name} curve: {what} must be a sequence of numbers") from None
    if arr.ndim != 1:
        raise BDInputError(
            f"{name} curve: {what} must be a one-dimensional sequence of numbers, "
            f"got shape {arr.shape}"
        )
    return arr


def _curve(name: str, rate: object, quality: object, method: str,
           min_spacing: float = MIN_RATE_SPACING) -> tuple[np.ndarray, np.ndarray]:
    """Validate one curve and return (rate, quality) sorted by rate."""
    r = _as_vector(name, "rates", rate)
    q = _as_vector(name, "qualities", quality)
    if len(r) != len(q):
        raise BDInputError(f"{name} curve: {len(r)} rates but {len(q)} quality values")
    need = _MIN_POINTS[method]
    if len(r) < need:
        raise BDInputError(
            f"{name} curve has {len(r)} point{'s' if len(r) != 1 else ''}; "
            f"method {method!r} needs at least {need}", "too-few-points"
        )
    for what, arr in (("rate", r), ("quality", q)):
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            i = int(bad[0])
            raise BDInputError(
                f"{name} curve: {what} of point {i} is {float(arr[i])!r}; "
                "rates and qualities must be finite numbers"
            )
    bad = np.flatnonzero(r <= 0)
    if bad.size:
        i = int(bad[0])
        raise BDInputError(
            f"{name} curve: rate of point {i} is {float(r[i])!r}; rates must be positive")
    order = np.argsort(r, kind="stable")
    r, q = r[order], q[order]
    dup = np.flatnonzero(np.diff(r) == 0)
    if dup.size:
        k = int(dup[0])
        first, second = sorted((int(order[k]), int(order[k + 1])))
        raise BDInputError(
            f"{name} curve: points {first} and {second} have the same rate {float(r[k])!r}; "
            "rates must be distinct", "close-rates"
        )
    spacing = r[1:] / r[:-1] - 1.0
    close = np.flatnonzero(spacing < min_spacing)
    if close.size:
        k = int(close[0])
        raise BDInputError(
            f"{name} curve: rates {float(r[k]):.6g} and {float(r[k + 1]):.6g} are "
            f"{spacing[k]:.3%} apart, closer than the {min_spacing:.2%} a BD interpolation "
            "needs (between such points every interpolant swings). Drop one of them",
            "close-rates")
    return r, q


def _check_quality_axis(name: str, rate: np.ndarray, quality: np.ndarray, method: str) -> None:
    """BD-rate interpolates over quality: check that the quality axis can carry it."""
    if method == "cubic":
        distinct = len(np.unique(quality))
        if distinct < 4:
            raise BDInputError(
                f"{name} curve has only {distinct} distinct quality values; "
                "method 'cubic' BD-rate needs at least 4", "too-few-points"
            )
    bad = np.flatnonzero(np.diff(quality) <= 0)
    if bad.size:
        k = int(bad[0])
        raise BDInputError(
            f"{name} curve: quality does not increase strictly with rate (rate {float(rate[k])!r} "
            f"has quality {float(quality[k])!r}, rate {float(rate[k + 1])!r} has quality "
            f"{float(quality[k + 1])!r}); method {method!r} BD-rate needs quality strictly "
            "increasing with rate. Fix or remove the point: it is not re-sorted or filtered",
            "non-monotonic"
        )


def _mean_difference(
    anchor_lr: np.ndarray,
    anchor_q: np.ndarray,
    test_lr: np.ndarray,
    test_q: np.ndarray,
    *,
    x_is_rate: bool,
    method: str,
    metric: str,
    min_overlap: float = MIN_OVERLAP,
) -> float:
    """Mean of (test - anchor) over the overlap of the abscissa ranges."""
    if x_is_rate:
        xa, ya, xt, yt, axis = anchor_lr, anchor_q, test_lr, test_q, "log10(rate)"
    else:
        xa, ya, xt, yt, axis = anchor_q, anchor_lr, test_q, test_lr, "quality"
    a_lo, a_hi = float(np.min(xa)), float(np.max(xa))
    t_lo, t_hi = float(np.min(xt)), float(np.max(xt))
    lo, hi = max(a_lo, t_lo), min(a_hi, t_hi)
    ranges = _ranges_text(x_is_rate, (a_lo, a_hi), (t_lo, t_hi))
    if not hi > lo:
        warnings.warn(BDWarning(
            f"{metric} is undefined (NaN): the curves do not overlap in {axis} ({ranges})",
            "no-overlap"), stacklevel=3)
        return math.nan
    if a_lo > t_lo or a_hi < t_hi:
        share = (hi - lo) / (t_hi - t_lo)
        if share < min_overlap:
            warnings.warn(BDWarning(
                f"{metric} is undefined (NaN): the anchor covers only {share:.1%} of the test "
                f"curve's {axis} range ({ranges}), below the {min_overlap:.0%} asked for"
                " (--min-overlap)", "low-overlap"), stacklevel=3)
            return math.nan
        warnings.warn(BDWarning(
            f"{metric}: the anchor covers only {share:.1%} of the test curve's {axis} range "
            f"({ranges}); the average is taken over the overlap only", "partial-overlap"),
            stacklevel=3)
    diff = _integral(xt, yt, method, lo, hi) - _integral(xa, ya, method, lo, hi)
    return diff / (hi - lo)


def _ranges_text(x_is_rate: bool, anchor: tuple[float, float], test: tuple[float, float]) -> str:
    if x_is_rate:
        (a_lo, a_hi), (t_lo, t_hi) = (10.0**v for v in anchor), (10.0**v for v in test)
        return f"anchor rate {a_lo:.6g}..{a_hi:.6g}, test rate {t_lo:.6g}..{t_hi:.6g}"
    return (
        f"anchor quality {anchor[0]:.6g}..{anchor[1]:.6g}, "
        f"test quality {test[0]:.6g}..{test[1]:.6g}"
    )


def _integral(x: np.ndarray, y: np.ndarray, method: str, lo: float, hi: float) -> float:
    """Integral over [lo, hi] of the interpolant of (x, y)."""
    if method == "cubic":
        poly = np.polynomial.Polynomial.fit(x, y, 3)
        prim = poly.integ()
        return float(prim(hi) - prim(lo))
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    slopes = _pchip_slopes(x, y) if method == "pchip" else _akima_slopes(x, y)
    return _hermite_integral(x, y, slopes, lo, hi)


def _pchip_end_slope(h0, h1, m0, m1):
    """The three-point end rule, element-wise over rows of curves."""
    d = ((2.0 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
    d = np.where(np.sign(d) != np.sign(m0), 0.0, d)
    return np.where((np.sign(m0) != np.sign(m1)) & (np.abs(d) > 3.0 * np.abs(m0)), 3.0 * m0, d)


def _pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fritsch-Carlson knot slopes of one curve (1-D) or of each row (2-D, one curve per
    row, as many points in each)."""
    if x.ndim == 1:
        return _pchip_slopes(x[None], y[None])[0]
    h = np.diff(x, axis=1)
    m = np.diff(y, axis=1) / h
    if x.shape[1] == 2:
        return np.concatenate([m, m], axis=1)
    d = np.zeros_like(y)
    left, right = m[:, :-1], m[:, 1:]
    w1 = 2.0 * h[:, 1:] + h[:, :-1]
    w2 = h[:, 1:] + 2.0 * h[:, :-1]
    ok = (np.sign(left) == np.sign(right)) & (left != 0) & (right != 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        d[:, 1:-1] = np.where(ok, (w1 + w2) / (w1 / left + w2 / right), 0.0)
    d[:, 0] = _pchip_end_slope(h[:, 0], h[:, 1], m[:, 0], m[:, 1])
    d[:, -1] = _pchip_end_slope(h[:, -1], h[:, -2], m[:, -1], m[:, -2])
    return d


def _akima_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    secants = np.diff(y) / np.diff(x)
    n = len(x)
    if n == 2:
        return np.array([secants[0], secants[0]])
    # s[j + 2] is the secant of segment j; two extrapolated secants on each side.
    s = np.empty(n + 3)
    s[2:-2] = secants
    s[1] = 2.0 * s[2] - s[3]
    s[0] = 2.0 * s[1] - s[2]
    s[-2] = 2.0 * s[-3] - s[-4]
    s[-1] = 2.0 * s[-2] - s[-3]
    prev2, prev, here, nxt = s[:-3], s[1:-2], s[2:-1], s[3:]
    w_prev = np.abs(nxt - here)
    w_here = np.abs(prev - prev2)
    total = w_prev + w_here
    slopes = 0.5 * (prev + here)
    ok = total > _AKIMA_BREAK * np.max(total)
    slopes[ok] = (w_prev[ok] * prev[ok] + w_here[ok] * here[ok]) / total[ok]
    return slopes


def _hermite_integral(x: np.ndarray, y: np.ndarray, d: np.ndarray, lo, hi):
    """Exact integral over [lo, hi] of the cubic Hermite interpolant with knot slopes d:
    of one curve (1-D, a float) or of each row (2-D, ``lo`` and ``hi`` one per row)."""
    if x.ndim == 1:
        return float(_hermite_integral(x[None], y[None], d[None], np.atleast_1d(lo),
                                       np.atleast_1d(hi))[0])
    h = np.diff(x, axis=1)
    delta = np.diff(y, axis=1) / h
    c2 = (3.0 * delta - 2.0 * d[:, :-1] - d[:, 1:]) / h
    c3 = (d[:, :-1] - 2.0 * delta + d[:, 1:]) / h**2
    a = np.clip(np.asarray(lo)[:, None], x[:, :-1], x[:, 1:]) - x[:, :-1]
    b = np.clip(np.asarray(hi)[:, None], x[:, :-1], x[:, 1:]) - x[:, :-1]

    def prim(s: np.ndarray) -> np.ndarray:
        return s * (y[:, :-1] + s * (d[:, :-1] / 2.0 + s * (c2 / 3.0 + s * c3 / 4.0)))

    return np.sum(prim(b) - prim(a), axis=1)
