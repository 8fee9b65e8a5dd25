"""``harness profile``: parameters per part, MACs, time and memory of learned codecs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from harness.profile import PARTS, part_of, profile
from tests.conftest import run_cli

OFFICIAL = Path(__file__).parent / "fixtures" / "official_param_shapes.json"


@pytest.mark.parametrize("name", ["stf", "wacnn"])
def test_parameters_equal_the_official_networks(name):
    """The parameter count of the network the profile builds equals the official
    network's tensors summed (buffers such as CDF tables are not parameters)."""
    from harness.registry import create_codec

    official = json.loads(OFFICIAL.read_text())["models"][name]["params"]
    net = create_codec(name).random_network(1)
    ours = {k: tuple(v.shape) for k, v in net.named_parameters()}
    assert ours == {k: tuple(shape) for k, shape in official}
    assert sum(v.numel() for v in net.parameters()) == sum(math.prod(s) for _, s in official)


@pytest.mark.parametrize("name", ["bmshj2018-hyperprior", "mbt2018", "cheng2020-attn", "stf",
                                  "wacnn", "tcm", "tic", "entroformer"])
def test_every_part_of_each_architecture_is_found(name):
    from harness.registry import create_codec

    net = create_codec(name).random_network(create_codec(name).qualities[0])
    parts = {}
    for key, value in net.named_parameters():
        parts[part_of(key)] = parts.get(part_of(key), 0) + value.numel()
    assert set(parts) >= set(PARTS[:3]), parts  # analysis, synthesis, hyperprior
    if name not in ("bmshj2018-hyperprior",):
        assert parts[PARTS[3]] > 0  # a context model / entropy-parameter network


def test_macs_against_a_count_by_hand():
    """The factorized model is convolutions and GDN only: MACs from the layers' shapes.
    (The network runs on the image padded to a multiple of 64, here 64x128; the MACs
    are per pixel of the image.)"""
    result = profile("bmshj2018-factorized", 64, 96, runs=1, memory=False)
    from compressai.entropy_models import EntropyBottleneck
    from compressai.layers import GDN
    from compressai.zoo import bmshj2018_factorized

    net = bmshj2018_factorized(quality=1)
    macs = []

    def count(module, inputs, output):
        x = inputs[0]
        if isinstance(module, torch.nn.ConvTranspose2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            macs.append(x.shape[2] * x.shape[3] * module.in_channels * module.out_channels * k)
        elif isinstance(module, torch.nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            macs.append(output.shape[2] * output.shape[3] * module.in_channels
                        * module.out_channels * k)
        elif isinstance(module, GDN):  # a 1x1 convolution of x**2 with gamma
            macs.append(x.shape[1] ** 2 * x.shape[2] * x.shape[3])
        elif isinstance(module, EntropyBottleneck):
            # its density: per element, products with matrices 3x1, 3x3, 3x3, 3x3, 1x3
            # (filters (3, 3, 3)), at the bin's upper and lower edge
            macs.append(2 * (3 + 9 + 9 + 9 + 3) * x.numel())

    for module in net.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, GDN,
                               EntropyBottleneck)):
            module.register_forward_hook(count)
    with torch.no_grad():
        net(torch.rand(1, 3, 64, 128))
    assert result.kmac_per_pixel["forward"] == pytest.approx(sum(macs) / (64 * 96) / 1e3,
                                                             rel=1e-9)
    assert result.parameters == sum(p.numel() for p in net.parameters())


def test_profile_on_the_command_line(tmp_path):
    done = run_cli("profile", "bmshj2018-hyperprior", "--size", "64x96", "--runs", "1",
                   "--format", "json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["weights"] == "random (released layout)"
    assert result["height"] == 64 and result["width"] == 96
    assert result["parameters"] == sum(result["parameters_by_part"].values()) > 5e6
    assert result["kmac_per_pixel"]["decode"] > 0 and result["seconds"]["decode"] > 0
    assert set(result["peak_memory_mib"]) == {"encode", "decode"}
    assert all(v > 0 for v in result["peak_memory_mib"].values())
    text = run_cli("profile", "bmshj2018-hyperprior", "--size", "64x96", "--runs", "1",
                   "--no-memory")
    assert "kMAC/pixel forward" in text.stdout and "memory" not in text.stdout.split("MACs")[0]
    for bad in (("--size", "64"), ("--size", "0x5")):
        refused = run_cli("profile", "bmshj2018-hyperprior", *bad)
        assert refused.returncode == 2 and "HEIGHTxWIDTH" in refused.stderr
    classical = run_cli("profile", "jpeg")
    assert classical.returncode == 2 and "not a learned codec" in classical.stderr
    for bad in (("--runs", "0"), ("--threads", "0"), ("--quality", "99")):
        refused = run_cli("profile", "bmshj2018-hyperprior", "--size", "32x32", *bad)
        assert refused.returncode == 2, refused.stderr
        assert "Traceback" not in refused.stderr and bad[0] in refused.stderr
    # a device that is not one, or a GPU that is not here: a usage error, no traceback
    for device in ("bogus",) + (() if torch.cuda.is_available() else ("cuda",)):
        refused = run_cli("profile", "bmshj2018-hyperprior", "--size", "32x32", "--device",
                          device)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
        assert f"cannot profile bmshj2018-hyperprior on {device}" in refused.stderr


def test_profile_of_a_checkpoint_names_it(tmp_path):
    from compressai.zoo import bmshj2018_factorized

    path = tmp_path / "mine.pth"
    torch.save(bmshj2018_factorized(quality=2).state_dict(), path)
    result = profile("bmshj2018-factorized", 64, 64, checkpoint=str(path), runs=1,
                     memory=False)
    assert result.weights == str(path)
    assert result.parameters == sum(p.numel() for p in bmshj2018_factorized(2).parameters())


def test_a_profile_leaves_the_shared_codec_alone():
    """Random weights go to a codec of its own, never to the one runs share."""
    from harness import registry

    registry._create_codec.cache_clear()
    profile("bmshj2018-factorized", 32, 32, runs=1, memory=False)
    assert registry.create_codec("bmshj2018-factorized", device="cpu")._models == {}
