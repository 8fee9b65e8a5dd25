"""Tests of harness.bd: agreement with the ``bjontegaard`` package, exact golden values,
input validation and warnings.

The RD points below are Kodak reference curves, copied as literals from
``shared/research/rd/reference/kodak/<file>`` (named above each one) so that the tests
do not read those files at run time. Each point is (bpp, quality).
"""

from __future__ import annotations

import doctest
import math
import warnings

import numpy as np
import pytest

from harness import bd
from harness.bd import METHODS, BDInputError, BDWarning, bd_psnr, bd_rate, msssim_to_db
from harness.errors import HarnessError, UsageError

# vtm.psnr.json: (bpp, psnr)
VTM_PSNR = (
    (0.04824490017361111, 26.14484539430146),
    (0.11249542236328125, 28.493021754424603),
    (0.24581654866536465, 31.199873720014093),
    (0.4905454847547744, 34.26153257289846),
    (0.8748101128472224, 37.419793158067485),
    (1.43084971110026, 40.42444421698711),
    (2.3246070014105906, 43.505766973634486),
    (3.6326090494791665, 46.59176008512777),
)
# bpg444.psnr.json: (bpp, psnr)
BPG444_PSNR = (
    (0.06776767306857638, 26.19512806390954),
    (0.1610234578450521, 28.68154930675666),
    (0.35155402289496523, 31.5946565907943),
    (0.6846966213650174, 34.857473813062924),
    (1.1996654934353295, 38.259886899666974),
    (1.9297120836046002, 41.47887283561703),
    (3.0578757392035594, 44.70311031066196),
    (4.703142801920573, 47.63251604714922),
)
# jpeg.psnr.json: (bpp, psnr)
JPEG_PSNR = (
    (0.22115325927734372, 23.779894921045457),
    (0.32661437988281244, 26.57723034342358),
    (0.42312622070312506, 28.042246379237767),
    (0.5083855523003472, 29.04180914810682),
    (0.5878660413953993, 29.78473021842612),
    (0.6601265801323783, 30.378313496658652),
    (0.728946261935764, 30.903164761925012),
    (0.786026848687066, 31.307827225129476),
    (0.8497187296549479, 31.70484530103775),
    (0.9060007731119791, 32.05865273799422),
    (0.9643800523546006, 32.39929573599792),
    (1.0372119479709203, 32.789915599755076),
    (1.1273964775933163, 33.234742421489976),
    (1.23984612358941, 33.792594320368266),
    (1.3688269721137154, 34.39429509119509),
    (1.5718070136176217, 35.239001425077355),
    (1.8588163587782118, 36.32886455167303),
    (2.350199381510416, 37.9121247026983),
    (3.4013400607638893, 40.556657112988766),
)
# compressai-mbt2018-mean-mse.cpu.psnr.json: (bpp, psnr)
MBT2018_MEAN_PSNR = (
    (0.12392171223958336, 27.699472968534337),
    (0.19798109266493058, 29.358805876639696),
    (0.3072441948784722, 31.128916719551516),
    (0.46061197916666674, 32.95067527714903),
    (0.6616651746961806, 34.96831704422008),
    (0.9144049750434027, 36.91109403854906),
    (1.2342088487413194, 38.83750942961362),
    (1.619089762369792, 40.63331397919807),
)
# compressai-bmshj2018-hyperprior-mse.cpu.psnr.json: (bpp, psnr)
BMSHJ2018_HYPERPRIOR_PSNR = (
    (0.13129340277777776, 27.58153679333392),
    (0.20889282226562503, 29.19669412138477),
    (0.3198581271701389, 30.972168705499175),
    (0.47835625542534727, 32.838191117040694),
    (0.6686842176649304, 34.5262427611008),
    (0.9388258192274304, 36.74336461762285),
    (1.2591722276475694, 38.58385584443213),
    (1.6602240668402775, 40.55687370015212),
)
# compressai-cheng2020-anchor-mse.cpu.psnr.json: (bpp, psnr)
CHENG2020_ANCHOR_PSNR = (
    (0.11959838867187501, 28.582315346297136),
    (0.18380398220486116, 29.968463144388622),
    (0.2709520128038195, 31.34260119519143),
    (0.4173855251736111, 33.389663451039304),
    (0.594455295138889, 35.11808807406383),
    (0.8057284884982642, 36.70447371846136),
)
# tcm-large-mse.paper.psnr.json: (bpp, psnr)
TCM_LARGE_PSNR = (
    (0.155, 30.07),
    (0.194, 30.85),
    (0.3, 32.59),
    (0.443, 34.33),
    (0.625, 36.15),
    (0.88, 38.07),
)
# vtm.ms-ssim.json: (bpp, ms_ssim_db)
VTM_MSSSIM_DB = (
    (0.04824490017361111, 8.557626506427168),
    (0.11249542236328125, 10.845523198371938),
    (0.24581654866536465, 13.576119399584933),
    (0.4905454847547744, 16.591256372335693),
    (0.8748101128472224, 19.49883126210362),
    (1.43084971110026, 22.118315497675095),
    (2.3246070014105906, 25.15401871172889),
    (3.6326090494791665, 28.717306615026704),
)
# stf-ms-ssim.paper.ms-ssim.json: (bpp, ms_ssim_db)
STF_MSSSIM_DB = (
    (0.109, 13.63),
    (0.168, 14.96),
    (0.236, 16.49),
    (0.34, 18.17),
    (0.483, 20.19),
    (0.664, 21.5),
)


def _split(points):
    return [p[0] for p in points], [p[1] for p in points]


def _points(rates, qualities):
    return list(zip(rates, qualities, strict=True))


def _shuffled(points, seed=0):
    order = np.random.default_rng(seed).permutation(len(points))
    if np.all(order == np.arange(len(points))):
        order = order[::-1]
    return [points[i] for i in order]


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@pytest.fixture(scope="module")
def bjontegaard():
    return pytest.importorskip("bjontegaard")


def _reference(bj, metric, anchor, test, method):
    """bjontegaard's value for points sorted by rate, mismatched counts allowed."""
    anchor, test = sorted(anchor), sorted(test)
    fn = bj.bd_rate if metric == "rate" else bj.bd_psnr
    return float(_quiet(fn, *_split(anchor), *_split(test), method, require_matching_points=False))


AGREEMENT_CASES = {
    "vtm-vs-bpg444": (VTM_PSNR, BPG444_PSNR),
    "vtm-vs-jpeg-19pt": (VTM_PSNR, JPEG_PSNR),
    "bpg444-vs-jpeg-19pt": (BPG444_PSNR, JPEG_PSNR),
    "vtm-vs-mbt2018-mean": (VTM_PSNR, MBT2018_MEAN_PSNR),
    "vtm-vs-bmshj2018-hyperprior": (VTM_PSNR, BMSHJ2018_HYPERPRIOR_PSNR),
    "vtm-vs-cheng2020-anchor": (VTM_PSNR, CHENG2020_ANCHOR_PSNR),
    "anchor-wider-vtm-vs-tcm-large": (VTM_PSNR, TCM_LARGE_PSNR),
    "test-wider-tcm-large-vs-vtm": (TCM_LARGE_PSNR, VTM_PSNR),
    "bpg444-vs-cheng2020-anchor": (BPG444_PSNR, CHENG2020_ANCHOR_PSNR),
    "msssim-db-vtm-vs-stf": (VTM_MSSSIM_DB, STF_MSSSIM_DB),
    "4pt-vtm-vs-tcm-large": (VTM_PSNR[1:5], TCM_LARGE_PSNR[:4]),
    "4pt-cheng2020-vs-bmshj2018": (CHENG2020_ANCHOR_PSNR[:4], BMSHJ2018_HYPERPRIOR_PSNR[1:5]),
    "6pt-vtm-vs-cheng2020-anchor": (VTM_PSNR[1:7], CHENG2020_ANCHOR_PSNR),
    "6pt-bpg444-vs-tcm-large": (BPG444_PSNR[1:7], TCM_LARGE_PSNR),
    "partial-overlap-vtm-low-vs-bpg444-high": (VTM_PSNR[:4], BPG444_PSNR[2:6]),
    "partial-overlap-4pt-vs-6pt": (MBT2018_MEAN_PSNR[3:7], TCM_LARGE_PSNR),
}


@pytest.mark.parametrize("metric", ["rate", "psnr"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", AGREEMENT_CASES, ids=str)
def test_agrees_with_bjontegaard(bjontegaard, case, method, metric):
    anchor, test = AGREEMENT_CASES[case]
    expected = _reference(bjontegaard, metric, anchor, test, method)
    fn = bd_rate if metric == "rate" else bd_psnr
    # the arithmetic is compared; the overlap guard (tested below) is switched off
    in_order = _quiet(fn, *_split(anchor), *_split(test), method=method, min_overlap=0.0)
    shuffled = _quiet(fn, *_split(_shuffled(anchor, 1)), *_split(_shuffled(test, 2)), method,
                      min_overlap=0.0)
    assert math.isfinite(expected)
    assert in_order == pytest.approx(expected, abs=1e-6)
    assert shuffled == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("metric", ["rate", "psnr"])
@pytest.mark.parametrize("method", ["pchip", "akima"])
@pytest.mark.parametrize("n", [2, 3])
def test_agrees_with_bjontegaard_on_2_and_3_points(bjontegaard, n, method, metric):
    anchor, test = VTM_PSNR[2 : 2 + n], TCM_LARGE_PSNR[1 : 1 + n]
    expected = _reference(bjontegaard, metric, anchor, test, method)
    fn = bd_rate if metric == "rate" else bd_psnr
    assert _quiet(fn, *_split(anchor), *_split(test), method, min_overlap=0.0) == pytest.approx(
        expected, abs=1e-6)


def test_two_point_pchip_and_akima_are_linear():
    anchor, test = VTM_PSNR[2:4], TCM_LARGE_PSNR[1:3]
    values = {m: _quiet(bd_rate, *_split(anchor), *_split(test), m) for m in ("pchip", "akima")}
    (ra, qa), (rt, qt) = _split(anchor), _split(test)
    lo, hi = max(qa[0], qt[0]), min(qa[1], qt[1])
    mid = (lo + hi) / 2
    delta = np.interp(mid, qt, np.log10(rt)) - np.interp(mid, qa, np.log10(ra))
    assert values["pchip"] == pytest.approx((10**delta - 1) * 100, abs=1e-9)
    assert values["akima"] == pytest.approx(values["pchip"], abs=1e-12)


def test_default_method_is_pchip():
    a, t = _split(VTM_PSNR), _split(TCM_LARGE_PSNR)
    assert bd_rate(*a, *t) == bd_rate(*a, *t, method="pchip")
    assert bd_psnr(*a, *t) == bd_psnr(*a, *t, method="pchip")
    assert METHODS == ("pchip", "akima", "cubic")


def test_known_value_tcm_large_vs_vtm():
    value = bd_rate(*_split(VTM_PSNR), *_split(TCM_LARGE_PSNR))
    assert value == pytest.approx(-11.725468898, abs=1e-6)


# --- golden values ------------------------------------------------------------------

GOLDEN_CURVES = {
    "vtm-8pt": VTM_PSNR,
    "tcm-large-6pt": TCM_LARGE_PSNR,
    "jpeg-19pt": JPEG_PSNR,
    "cheng2020-4pt": CHENG2020_ANCHOR_PSNR[:4],
    "stf-msssim-db": STF_MSSSIM_DB,
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("curve", GOLDEN_CURVES, ids=str)
def test_curve_against_itself_is_zero(curve, method):
    rate, quality = _split(GOLDEN_CURVES[curve])
    with warnings.catch_warnings():
        warnings.simplefilter("error", BDWarning)
        assert bd_rate(rate, quality, rate, quality, method) == pytest.approx(0.0, abs=1e-12)
        assert bd_psnr(rate, quality, rate, quality, method) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("k", [0.8, 1.25, 0.5])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("curve", GOLDEN_CURVES, ids=str)
def test_scaled_rates_give_exact_bd_rate(curve, method, k):
    rate, quality = _split(GOLDEN_CURVES[curve])
    with warnings.catch_warnings():
        warnings.simplefilter("error", BDWarning)
        value = bd_rate(rate, quality, [r * k for r in rate], quality, method)
    assert value == pytest.approx((k - 1) * 100, abs=1e-9)


@pytest.mark.parametrize("d", [0.5, -0.3, 2.0])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("curve", GOLDEN_CURVES, ids=str)
def test_shifted_quality_gives_exact_bd_psnr(curve, method, d):
    rate, quality = _split(GOLDEN_CURVES[curve])
    with warnings.catch_warnings():
        warnings.simplefilter("error", BDWarning)
        value = bd_psnr(rate, quality, rate, [q + d for q in quality], method)
    assert value == pytest.approx(d, abs=1e-9)


@pytest.mark.parametrize("method", ["pchip", "akima"])
def test_swapping_anchor_and_test(method):
    a, t = _split(VTM_PSNR), _split(TCM_LARGE_PSNR)
    forward = bd_rate(*a, *t, method)
    backward = _quiet(bd_rate, *t, *a, method)
    assert backward == pytest.approx(100 * (100 / (100 + forward) - 1), abs=1e-9)
    assert _quiet(bd_psnr, *t, *a, method) == pytest.approx(-bd_psnr(*a, *t, method), abs=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_rate_unit_cancels(method):
    a, t = _split(VTM_PSNR), _split(MBT2018_MEAN_PSNR)
    bits = 768 * 512
    a_bytes = ([r * bits / 8 for r in a[0]], a[1])
    t_bytes = ([r * bits / 8 for r in t[0]], t[1])
    assert bd_rate(*a_bytes, *t_bytes, method) == pytest.approx(bd_rate(*a, *t, method), abs=1e-9)
    assert bd_psnr(*a_bytes, *t_bytes, method) == pytest.approx(bd_psnr(*a, *t, method), abs=1e-9)


def test_docstring_examples():
    result = doctest.testmod(bd, verbose=False)
    assert result.attempted >= 2
    assert result.failed == 0


def test_msssim_to_db():
    assert msssim_to_db(0.99) == pytest.approx(20.0, abs=1e-12)
    assert isinstance(msssim_to_db(0.9), float)
    values = msssim_to_db([0.9, 0.999])
    assert isinstance(values, np.ndarray)
    np.testing.assert_allclose(values, [10.0, 30.0], atol=1e-9)
    # The dB values of the VTM curve in vtm.ms-ssim.json, from its linear MS-SSIM.
    assert msssim_to_db(0.8606081604957581) == pytest.approx(VTM_MSSSIM_DB[0][1], abs=1e-9)
    for bad in (1.0, 1.5, math.nan, [0.9, 1.0]):
        with pytest.raises(BDInputError, match="must be finite and below 1"):
            msssim_to_db(bad)


# --- validation -----------------------------------------------------------------------

R4 = [0.1, 0.2, 0.4, 0.8]
Q4 = [30.0, 33.0, 36.0, 39.0]


def _call(metric, anchor=(R4, Q4), test=(R4, [q + 0.5 for q in Q4]), method="pchip"):
    fn = bd_rate if metric == "rate" else bd_psnr
    return fn(*anchor, *test, method)


@pytest.mark.parametrize("metric", ["rate", "psnr"])
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "spline"}, "unknown BD method 'spline'; expected one of 'pchip', "
                               "'akima', 'cubic'"),
        ({"method": "PCHIP"}, "unknown BD method 'PCHIP'"),
        ({"method": None}, "unknown BD method None"),
        ({"anchor": (R4[:3], Q4[:3]), "method": "cubic"},
         "anchor curve has 3 points; method 'cubic' needs at least 4"),
        ({"test": (R4[:2], Q4[:2]), "method": "cubic"},
         "test curve has 2 points; method 'cubic' needs at least 4"),
        ({"test": ([0.1], [30.0])}, "test curve has 1 point; method 'pchip' needs at least 2"),
        ({"anchor": ([0.1], [30.0]), "method": "akima"},
         "anchor curve has 1 point; method 'akima' needs at least 2"),
        ({"anchor": ([], [])}, "anchor curve has 0 points; method 'pchip' needs at least 2"),
        ({"test": (R4, Q4[:3])}, "test curve: 4 rates but 3 quality values"),
        ({"anchor": (R4[:3], Q4)}, "anchor curve: 3 rates but 4 quality values"),
        ({"test": (R4, [30.0, 33.0, math.nan, 39.0])},
         "test curve: quality of point 2 is nan; rates and qualities must be finite"),
        ({"anchor": ([0.1, math.inf, 0.4, 0.8], Q4)},
         "anchor curve: rate of point 1 is inf; rates and qualities must be finite"),
        ({"anchor": (R4, [30.0, -math.inf, 36.0, 39.0])},
         "anchor curve: quality of point 1 is -inf"),
        ({"anchor": ([0.0, 0.2, 0.4, 0.8], Q4)},
         "anchor curve: rate of point 0 is 0.0; rates must be positive"),
        ({"test": ([0.1, 0.2, -0.4, 0.8], Q4)},
         "test curve: rate of point 2 is -0.4; rates must be positive"),
        ({"anchor": ([0.2, 0.1, 0.4, 0.2], Q4)},
         "anchor curve: points 0 and 3 have the same rate 0.2; rates must be distinct"),
        ({"test": ([0.1, 0.2, 0.4, 0.4], Q4), "method": "cubic"},
         "test curve: points 2 and 3 have the same rate 0.4"),
        ({"anchor": (["a", "b"], [1.0, 2.0])}, "anchor curve: rates must be a sequence of numbers"),
        ({"test": (R4, [[30.0, 33.0], [36.0, 39.0]])},
         r"test curve: qualities must be a one-dimensional sequence of numbers, "
         r"got shape \(2, 2\)"),
        ({"test": (0.5, 30.0)},
         r"test curve: rates must be a one-dimensional sequence of numbers, got shape \(\)"),
    ],
)
def test_invalid_input_is_refused(metric, kwargs, message):
    with pytest.raises(BDInputError, match=message):
        _call(metric, **kwargs)


def test_input_error_classes():
    assert issubclass(BDInputError, UsageError)
    assert issubclass(BDInputError, HarnessError)
    assert issubclass(BDInputError, ValueError)
    assert issubclass(BDWarning, Warning)


NOT_MONOTONE = ([0.1, 0.2, 0.4, 0.8, 1.6], [30.0, 33.0, 36.0, 35.5, 39.0])


@pytest.mark.parametrize("method", ["pchip", "akima"])
@pytest.mark.parametrize("which", ["anchor", "test"])
def test_bd_rate_refuses_quality_not_increasing_with_rate(method, which):
    other = ([0.09, 0.18, 0.36, 0.72, 1.5], [30.0, 33.0, 36.0, 37.0, 39.0])
    anchor, test = (NOT_MONOTONE, other) if which == "anchor" else (other, NOT_MONOTONE)
    message = (
        rf"{which} curve: quality does not increase strictly with rate \(rate 0.4 has quality "
        rf"36.0, rate 0.8 has quality 35.5\); method '{method}' BD-rate needs quality strictly "
        "increasing with rate"
    )
    with pytest.raises(BDInputError, match=message):
        bd_rate(*anchor, *test, method)
    # The same points in another order are refused just the same: nothing is re-sorted.
    shuffled = tuple(zip(*_shuffled(_points(*NOT_MONOTONE), 3), strict=True))
    args = (*shuffled, *other) if which == "anchor" else (*other, *shuffled)
    with pytest.raises(BDInputError, match="quality does not increase strictly with rate"):
        bd_rate(*args, method)


@pytest.mark.parametrize("method", ["pchip", "akima"])
def test_bd_rate_refuses_equal_quality(method):
    with pytest.raises(BDInputError, match="rate 0.2 has quality 33.0, rate 0.4 has quality 33.0"):
        bd_rate(R4, Q4, R4, [30.0, 33.0, 33.0, 39.0], method)


def test_cubic_bd_rate_refuses_non_monotone_quality_and_bd_psnr_accepts_it(bjontegaard):
    other = ([0.09, 0.18, 0.36, 0.72, 1.5], [30.0, 33.0, 36.0, 37.0, 39.0])
    # bjontegaard's cubic fit returns a number here; it is the fit through a fold
    assert math.isfinite(_reference(bjontegaard, "rate", _points(*other),
                                    _points(*NOT_MONOTONE), "cubic"))
    with pytest.raises(BDInputError, match="quality does not increase strictly") as info:
        bd_rate(*other, *NOT_MONOTONE, "cubic")
    assert info.value.code == "non-monotonic"
    for method in METHODS:
        expected = _reference(
            bjontegaard, "psnr", _points(*other), _points(*NOT_MONOTONE), method
        )
        with pytest.warns(BDWarning, match="anchor covers only 97.7%"):
            value = bd_psnr(*other, *NOT_MONOTONE, method)
        assert value == pytest.approx(expected, abs=1e-6)


def test_cubic_bd_rate_needs_four_distinct_qualities():
    with pytest.raises(BDInputError, match="test curve has only 3 distinct quality values; "
                                           "method 'cubic' BD-rate needs at least 4"):
        bd_rate(R4, Q4, R4, [30.0, 33.0, 33.0, 39.0], "cubic")


# --- overlap and coverage warnings ----------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
def test_no_overlap_gives_nan_and_warning(method):
    low, high = VTM_PSNR[:4], VTM_PSNR[4:]
    with pytest.warns(BDWarning, match="BD-rate is undefined \\(NaN\\): the curves do not "
                                       "overlap in quality"):
        assert math.isnan(bd_rate(*_split(low), *_split(high), method))
    with pytest.warns(BDWarning, match="BD-PSNR is undefined \\(NaN\\): the curves do not "
                                       "overlap in log10\\(rate\\)"):
        assert math.isnan(bd_psnr(*_split(high), *_split(low), method))


def test_touching_ranges_give_nan(bjontegaard):
    low, high = VTM_PSNR[:5], VTM_PSNR[4:]
    assert math.isnan(_reference(bjontegaard, "rate", low, high, "pchip"))
    with pytest.warns(BDWarning, match="do not overlap"):
        assert math.isnan(bd_rate(*_split(low), *_split(high)))


@pytest.mark.parametrize("method", METHODS)
def test_warns_when_anchor_does_not_cover_test(method):
    anchor, test = _split(TCM_LARGE_PSNR), _split(VTM_PSNR)
    with pytest.warns(BDWarning, match=r"BD-rate: the anchor covers only 39\.1% of the test "
                                       r"curve's quality range"):
        bd_rate(*anchor, *test, method)
    with pytest.warns(BDWarning, match=r"BD-PSNR: the anchor covers only .*% of the test "
                                       r"curve's log10\(rate\) range"):
        bd_psnr(*anchor, *test, method)


def test_warns_on_partial_overlap():
    anchor, test = _split(VTM_PSNR[:4]), _split(BPG444_PSNR[2:6])
    with pytest.warns(BDWarning, match="anchor covers only"):
        value = bd_rate(*anchor, *test)
    assert math.isfinite(value)


@pytest.mark.parametrize("method", METHODS)
def test_no_warning_when_anchor_covers_test(method):
    anchor, test = _split(VTM_PSNR), _split(TCM_LARGE_PSNR)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isfinite(bd_rate(*anchor, *test, method))
        assert math.isfinite(bd_psnr(*anchor, *test, method))


# --- guards: each refusal has its reason code ---------------------------------------------

NEAR = ([0.1, 0.2, 0.2001, 0.4, 0.8], [30.0, 32.0, 33.5, 35.0, 38.0])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("fn", [bd_rate, bd_psnr])
def test_rates_closer_than_the_stated_spacing_are_refused(method, fn):
    anchor = ([0.1, 0.2, 0.4, 0.8], [29.0, 32.0, 35.0, 38.0])
    with pytest.raises(BDInputError, match=r"0.2 and 0.2001 are 0.050% apart, closer than the"
                                           r" 0.50%") as info:
        fn(*anchor, *NEAR, method)
    assert info.value.code == "close-rates"
    # the limit is stated and configurable; below it the value is computed
    assert math.isfinite(_quiet(fn, *anchor, *NEAR, method, min_spacing=0.0001))


@pytest.mark.parametrize("method", METHODS)
def test_an_overlap_below_the_stated_fraction_gives_nan_with_its_code(method):
    anchor, test = _split(TCM_LARGE_PSNR), _split(VTM_PSNR)  # covers 39.1 % of the test
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert math.isnan(bd_rate(*anchor, *test, method, min_overlap=0.5))
    (warning,) = [w.message for w in caught]
    assert warning.code == "low-overlap" and "below the 50% asked for" in str(warning)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert math.isfinite(bd_rate(*anchor, *test, method, min_overlap=0.2))
    assert [w.message.code for w in caught] == ["partial-overlap"]


def test_the_issue_s_small_overlap_is_refused_by_default():
    anchor = ([0.1, 0.2, 0.4, 0.8], [30.0, 33.0, 36.0, 39.0])
    test = ([0.75, 1.5, 3.0, 6.0], [38.9, 42.0, 45.0, 48.0])  # 0.1 dB of 9.1: 1.1 %
    with pytest.warns(BDWarning, match="covers only 1.1%") as record:
        assert math.isnan(bd_rate(*anchor, *test))
    assert record[0].message.code == "low-overlap"


def test_no_overlap_and_too_few_points_have_codes():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bd_rate(*_split(VTM_PSNR[:4]), *_split(VTM_PSNR[4:]))
    assert caught[0].message.code == "no-overlap"
    with pytest.raises(BDInputError) as info:
        bd_rate(R4[:3], Q4[:3], R4, Q4, "cubic")
    assert info.value.code == "too-few-points"


def test_shipped_literature_comparisons_pass_the_default_guards():
    """Every shipped published curve against the shipped VTM and BPG anchors of its
    dataset gives a number with the default guards (what papers' tables compare)."""
    from harness.curves import _published_index, bd_table, published_curves

    compared = 0
    for dataset in _published_index():
        curves = published_curves([dataset])
        for anchor in ("vtm@published", "bpg@published"):
            if not any(c.name.startswith(anchor.split("@")[0]) for c in curves):
                continue
            table = bd_table(curves, anchor=anchor)
            table = table[table["reason"] != "no-anchor"]
            refused = table[table["reason"].str.contains("low-overlap|close-rates|monotonic")]
            assert refused.empty, refused[["dataset", "codec", "metric", "warning"]]
            compared += len(table)
    assert compared > 300


def test_many_bd_rates_at_once_equal_one_at_a_time():
    """bd_rate_many (vectorised for pchip, which bootstrap intervals use) gives what
    bd_rate gives pair by pair, NaN where bd_rate refuses a pair or returns NaN."""
    rng = np.random.default_rng(1)
    pairs, points = 400, 4
    rate = np.sort(rng.uniform(0.1, 2.0, (2, pairs, points)), axis=2)
    quality = 30 + 8 * np.log2(rate) + rng.normal(0, 0.4, (2, pairs, points))
    rate[0, :5] = rate[0, :5, ::-1]  # unsorted input is sorted, as bd_rate does
    quality[0, :5] = quality[0, :5, ::-1]
    rate[1, 5, 2] = rate[1, 5, 1] * 1.001  # closer than the least spacing
    quality[1, 6, 3] = np.nan
    quality[1, 7] += 40  # no overlap
    quality[1, 8] += 0.8 * (quality[1, 8].max() - quality[1, 8].min())  # low overlap
    for method in ("pchip", "akima", "cubic"):
        many = bd.bd_rate_many(rate[0], quality[0], rate[1], quality[1], method)
        one = []
        for i in range(pairs):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", bd.BDWarning)
                try:
                    one.append(bd.bd_rate(rate[0, i], quality[0, i], rate[1, i], quality[1, i],
                                          method))
                except bd.BDInputError:
                    one.append(math.nan)
        one = np.array(one)
        assert np.array_equal(np.isnan(many), np.isnan(one)), method
        assert np.isnan(one).sum() >= 5 and np.isfinite(one).sum() > pairs // 2
        np.testing.assert_allclose(many[np.isfinite(one)], one[np.isfinite(one)], rtol=0,
                                   atol=1e-9)
