"""Metric registry: built-ins by name, plugins through the entry-point group
``harness.metrics``, and ``harness metrics``."""

import json

import numpy as np
import pytest

from harness.errors import UsageError
from harness.metrics.registry import GROUPS, MetricSet, create_metric, expand
from tests.conftest import run_cli
from tests.test_registry import _with_plugin, installed_plugin  # noqa: F401  (a fixture)


def test_groups_expand_after_the_defaults_and_unknown_names_are_refused():
    assert expand(["jpeg-ai"]) == ("psnr-rgb", "ms-ssim-rgb", *GROUPS["jpeg-ai"])
    assert expand(["psnr-y", "psnr-y", "psnr-rgb"]) == ("psnr-rgb", "ms-ssim-rgb", "psnr-y")
    with pytest.raises(UsageError, match=r"unknown metric 'psnr-yy'.*Did you mean.*psnr-y"):
        expand(["psnr-yy"])


def test_only_metrics_outside_the_results_table_are_measured_as_extras():
    image = np.zeros((8, 8, 3), np.uint8)
    found = MetricSet(expand(["psnr-y"])).measure(image, image + 1)
    assert set(found) == {"psnr-y"}  # psnr-rgb and ms-ssim-rgb are results columns
    assert found["psnr-y"][1] == create_metric("psnr-y").fingerprint()
    assert MetricSet().measure(image, image) == {}


def test_metrics_are_listed_with_needs_and_availability():
    listed = run_cli("metrics", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    entries = {e["name"]: e for e in json.loads(listed.stdout)}
    assert {"psnr-rgb", "ms-ssim-rgb", "psnr-y", "psnr-u", "psnr-v", "psnr-yuv",
            "ms-ssim-y"} <= set(entries)
    assert entries["ms-ssim-y"]["needs"] == ["torch", "pytorch_msssim"]
    assert entries["psnr-y"]["available"] and entries["psnr-y"]["stored"] == "metrics table"
    assert entries["psnr-rgb"]["stored"] == "results.psnr"
    assert entries["psnr-y"]["fingerprint"] == "psnr-y/v1/bt709-10bit"
    text = run_cli("metrics").stdout
    assert ("jpeg-ai = psnr-y psnr-u psnr-v psnr-yuv ms-ssim-y vif fsim iw-ssim psnr-hvs nlpd"
            in text)
    assert entries["vif"]["needs"] == ["torch", "piq"]


def test_plugin_metrics_are_listed_validated_and_cannot_shadow(installed_plugin):  # noqa: F811
    listed = run_cli("metrics", "--format", "json", env=_with_plugin(installed_plugin))
    assert listed.returncode == 0, listed.stderr
    entries = {e["name"]: e for e in json.loads(listed.stdout)}
    mae = entries["toy-mae"]
    assert mae["available"] and mae["origin"] == "toy-codec-plugin"
    assert mae["higher_is_better"] is False
    missing = entries["toy-needs-missing"]
    assert not missing["available"]
    assert "a_module_nobody_installed" in missing["why"] and "pip install nothing" in missing["why"]
    assert not entries["toy-not-a-metric"]["available"]
    assert "is not a harness.metrics.registry.Metric" in entries["toy-not-a-metric"]["why"]
    assert "failed to load" in entries["toy-broken-metric"]["why"]
    # a plugin that takes a built-in's name does not replace it
    assert entries["psnr-y"]["origin"] == "built-in"


def test_curves_name_the_metrics_they_can_be_compared_on():
    from harness.curves import curve_from_results, metric_names

    with_y = curve_from_results("a", "d", "imported", {
        "bpp": [0.5, 1.0], "psnr-rgb": [30.0, 33.0], "psnr-y": [31.0, 34.0],
        "ms-ssim-y": [0.9, 0.99]})
    plain = curve_from_results("b", "d", "imported", {"bpp": [0.4, 0.9], "psnr-rgb": [29.0, 32.0]})
    assert metric_names([with_y, plain]) == ["psnr", "psnr-y", "ms-ssim-y"]
    assert metric_names([plain]) == ["psnr"]
    bpp, db = with_y.rd("ms-ssim-y")  # a similarity is compared in dB, as MS-SSIM
    assert db == pytest.approx([10.0, 20.0])
    assert plain.rd("psnr-y")[0].size == 0 and not plain.has("psnr-y")
    with pytest.raises(UsageError, match="unknown metric 'psnr-x'"):
        with_y.rd("psnr-x")
