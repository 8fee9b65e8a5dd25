"""harness check: gates, RD verdicts, exit codes and the CI outputs, on a tiny network
trained for a few seconds (so that its RD behaviour is real) and on random ones."""

import json
import math
from xml.etree import ElementTree

import numpy as np
import pytest
import torch
from PIL import Image

from harness import check
from tests.conftest import SAMPLE_DIR, run_cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A factorized-prior network (N=24, M=32) trained for seconds on a real photo."""
    from compressai.models import FactorizedPrior

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    photo = np.asarray(Image.open(SAMPLE_DIR / "coffee.png").convert("RGB"))
    x = torch.from_numpy(photo.astype(np.float32) / 255).permute(2, 0, 1)
    net = FactorizedPrior(24, 32)
    optimizer = torch.optim.Adam(
        [p for n, p in net.named_parameters() if not n.endswith("quantiles")], lr=1e-3)
    for _ in range(100):
        rows, cols = rng.integers(0, x.shape[1] - 64, 4), rng.integers(0, x.shape[2] - 64, 4)
        batch = torch.stack([x[:, r:r + 64, c:c + 64] for r, c in zip(rows, cols)])
        out = net(batch)
        bits = sum(-torch.log2(v).sum() for v in out["likelihoods"].values())
        loss = bits / batch[:, 0].numel() + 0.01 * 255**2 * torch.mean((out["x_hat"] - batch) ** 2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    folder = tmp_path_factory.mktemp("trained")
    good = folder / "good.pth.tar"
    torch.save({"state_dict": net.state_dict()}, good)
    state = net.state_dict()
    generator = torch.Generator().manual_seed(1)
    worse = {k: v + 0.3 * v.std() * torch.randn(v.shape, generator=generator)
             if k.startswith("g_s.") and k.endswith("weight") else v for k, v in state.items()}
    bad = folder / "worse.pth.tar"
    torch.save({"state_dict": worse}, bad)
    return good, bad


def _check(*args, cwd):
    """`harness check` on two small crops of a real photo (the folder next to cwd)."""
    folder = cwd / "photos"
    if not folder.is_dir():
        folder.mkdir()
        photo = np.asarray(Image.open(SAMPLE_DIR / "astronaut.png").convert("RGB"))
        Image.fromarray(photo[:192, :256]).save(folder / "a.png")
        Image.fromarray(photo[200:392, 150:406]).save(folder / "b.png")
    return run_cli("check", "bmshj2018-factorized", "--no-progress", "--datasets", str(folder),
                   "--gate-images", "1", *args, cwd=cwd)


def test_a_worse_checkpoint_fails_and_names_the_gate(trained, tmp_path):
    good, worse = trained
    junit = tmp_path / "check.xml"
    markdown = tmp_path / "comment.md"
    done = _check("--checkpoints", str(worse), "--baseline", str(good), "--junit", str(junit),
                  "--markdown", str(markdown), "--json", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    result = json.loads(done.stdout)
    assert result["verdict"] == "regression" and result["exit_code"] == 1
    (comparison,) = result["comparisons"]
    assert comparison["kind"] == "point-vs-point" and comparison["numbers"]["delta_psnr_db"] < -0.05
    assert comparison["moved_images"], "per-image changes should be listed"
    gates = {g["name"]: g["passed"] for g in result["gates"]}
    assert gates["rd"] is False and all(v for k, v in gates.items() if k != "rd")

    suite = ElementTree.parse(junit).getroot()  # valid XML
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [g["name"] for g in result["gates"]]
    assert suite.get("failures") == "1" and cases[-1].find("failure") is not None
    assert "regression" in markdown.read_text()


def test_a_checkpoint_passes_against_itself(trained, tmp_path):
    good, _ = trained
    done = _check("--checkpoints", str(good), "--baseline", str(good), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("verdict: PASS")


def test_a_corrupted_checkpoint_is_an_input_error(trained, tmp_path):
    good, _ = trained
    broken = tmp_path / "broken.pth.tar"
    broken.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    done = _check("--checkpoints", str(broken), "--baseline", str(good), cwd=tmp_path)
    assert done.returncode == 2
    assert "broken.pth.tar" in done.stderr and "not a readable PyTorch checkpoint" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_checkpoint_of_another_architecture_fails_the_strict_load_gate(trained, tmp_path):
    from compressai.zoo.image import _load_model

    other = tmp_path / "hyperprior.pth.tar"
    torch.save(_load_model("bmshj2018-hyperprior", "mse", 1).state_dict(), other)
    good, _ = trained
    done = _check("--checkpoints", str(other), "--baseline", str(good), cwd=tmp_path)
    assert done.returncode == 1
    assert "FAIL loads-strictly" in done.stdout and "not in the network" in done.stdout


def test_golden_bitstreams(trained, tmp_path):
    good, _ = trained
    golden = tmp_path / "golden"
    wrote = _check("--checkpoints", str(good), "--baseline", str(good), "--write-golden",
                   str(golden), "--golden", str(golden), cwd=tmp_path)
    assert wrote.returncode == 0 and "ok   golden" in wrote.stdout
    md5 = sorted(golden.glob("*.md5"))[0]
    md5.write_text("0" * 32 + "\n")
    again = _check("--checkpoints", str(good), "--baseline", str(good), "--golden", str(golden),
                   cwd=tmp_path)
    assert again.returncode == 1 and "FAIL golden" in again.stdout
    assert "decoded pixels changed" in again.stdout


def test_single_point_against_a_curve_by_hand():
    # two points: pchip over log rate is the straight line between them
    base = (np.array([0.1, 0.4]), np.array([30.0, 36.0]))
    tol = check.Tolerances()
    result = check.compare_point_to_curve("d", (0.2, 32.5), base, tol, "pchip")
    assert result.numbers["baseline_psnr_at_bpp"] == pytest.approx(33.0)
    assert result.numbers["delta_psnr_db"] == pytest.approx(-0.5)
    expected_rate = 0.1 * 4 ** (2.5 / 6)
    assert result.numbers["baseline_bpp_at_psnr"] == pytest.approx(expected_rate)
    assert result.numbers["delta_rate_percent"] == pytest.approx((0.2 / expected_rate - 1) * 100)
    assert result.verdict == check.REGRESSION
    better = check.compare_point_to_curve("d", (0.2, 33.2), base, tol, "pchip")
    assert better.verdict == check.PASS and better.numbers["delta_psnr_db"] == pytest.approx(0.2)
    outside = check.compare_point_to_curve("d", (0.05, 27.0), base, tol, "pchip")
    assert outside.verdict == check.CANNOT_COMPARE and "outside" in outside.numbers["reason"]


def test_point_against_point_rules():
    tol = check.Tolerances(max_psnr_drop=0.05, max_rate_increase=1.0)
    # PSNR drops at a rate that is not lower: regression
    assert check.compare_points("d", (0.5, 31.9), (0.5, 32.0), tol).verdict == check.REGRESSION
    # PSNR drops but the rate is lower too: a different trade-off, not a regression
    assert check.compare_points("d", (0.4, 31.9), (0.5, 32.0), tol).verdict == check.PASS
    # rate grows beyond 1 % at a PSNR not higher: regression
    assert check.compare_points("d", (0.51, 32.0), (0.5, 32.0), tol).verdict == check.REGRESSION


def test_a_set_against_a_curve_uses_bd_rate():
    base = (np.array([0.1, 0.2, 0.4, 0.8]), np.array([30.0, 33.0, 36.0, 39.0]))
    worse = (base[0] * 1.02, base[1])
    result = check.compare_curve("d", worse, base, check.Tolerances(max_bd_rate=0.5), "pchip")
    assert result.verdict == check.REGRESSION
    assert result.numbers["bd_rate_percent"] == pytest.approx(2.0)
    assert math.isnan(check.compare_curve("d", (base[0] * 100, base[1]), base,
                                          check.Tolerances(), "pchip").numbers["bd_psnr_db"])
