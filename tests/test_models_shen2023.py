"""Shen & Liu 2023 (harness.models.shen2023): the original layout, the chunk coding order
and supports, official-format checkpoints (strict and lenient), byte-exact round trips.

The network has 417.8 M parameters: one instance is built per module, and one
official-format checkpoint (random weights) is written per module. The key list in
tests/fixtures/models/shen2023.json.gz is the state_dict of the original class (source
named in the file).
"""

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.checkpoints import CheckpointMismatch
from harness.codecs.learned import padding, unpack
from harness.codecs.shen2023 import Shen2023, load_lenient
from harness.models import create
from harness.models.shen2023 import CODING_ORDER, decoded_window, merge_chunks, split_chunks
from harness.registry import create_codec
from tests.conftest import assert_decodes_to_forward, run_cli

FIXTURE = Path(__file__).parent / "fixtures" / "models" / "shen2023.json.gz"


def original() -> dict:
    return json.loads(gzip.decompress(FIXTURE.read_bytes()))


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return create("shen2023").eval()


def trained_like(net) -> dict:
    """Random weights with a plausible entropy bottleneck and a non-zero y."""
    generator = torch.Generator().manual_seed(0)
    state = dict(net.state_dict())
    for key, value in list(state.items()):
        if (key.startswith("entropy_bottleneck.") and value.is_floating_point()
                and value.numel() > 3 and not key.endswith("quantiles")):
            state[key] = value + 0.5 * torch.randn(value.shape, generator=generator)
    state["layers.3.blocks.1.mlp.fc2.weight"] = state["layers.3.blocks.1.mlp.fc2.weight"] * 4
    return state


@pytest.fixture(scope="module")
def checkpoint(net, tmp_path_factory):
    """Saved as the authors' train.py saves it (plus DataParallel names), no CDF tables."""
    state = trained_like(net)
    wrapped = {f"module.{k}": v for k, v in state.items()}
    path = tmp_path_factory.mktemp("released") / "shen2023_0035.ckpt"
    torch.save({"epoch": 120, "state_dict": wrapped, "loss": torch.tensor(0.9),
                "optimizer": {"state": {}, "param_groups": []},
                "aux_optimizer": {"state": {}, "param_groups": []},
                "lr_scheduler": {"last_epoch": 120}}, path)
    return path


@pytest.fixture(scope="module")
def codec(checkpoint):
    codec = create_codec("shen2023", checkpoint=str(checkpoint))
    codec.model(1)
    return codec


def test_state_dict_layout_equals_the_original(net):
    reference = original()
    buffers = {k for k, _ in net.named_buffers()}
    layout = [[k, list(v.shape), str(v.dtype).removeprefix("torch."),
               "buffer" if k in buffers else "param"] for k, v in net.state_dict().items()]
    assert layout == reference["keys"]  # keys, order, shapes, dtypes, buffers
    assert len(layout) == 7859
    assert sum(p.numel() for p in net.parameters()) == reference["n_params"] == 417843543
    assert reference["source"]["class"] == "SymmetricalTransFormer5"


def reference_order() -> list[tuple[int, int, int]]:
    """Quadrants top-left, bottom-left, top-right, bottom-right; channel groups inside."""
    quadrants = {"TL": (0, 0), "BL": (1, 0), "TR": (0, 1), "BR": (1, 1)}
    return [(group, *quadrants[name]) for name in ("TL", "BL", "TR", "BR")
            for group in range(6)]


def test_coding_order_and_windows():
    assert list(CODING_ORDER) == reference_order()
    for k in range(24):
        expected = list(range(k)) if k < 12 else list(range(k - 12, k))
        assert list(decoded_window(k)) == expected
    y = torch.randn(1, 384, 6, 10)
    chunks = split_chunks(y, 6)
    for chunk, (group, row, col) in zip(chunks, reference_order()):
        rows, cols = slice(3 * row, 3 * row + 3), slice(5 * col, 5 * col + 5)
        assert torch.equal(chunk, y[:, 64 * group:64 * group + 64, rows, cols])
    assert torch.equal(merge_chunks(chunks, 6), y)
    with pytest.raises(ValueError, match="even"):
        split_chunks(torch.zeros(1, 384, 3, 4), 6)


def test_context_nets_see_the_documented_supports(net):
    """Inputs of cc_mean_transforms2[k]: all 24 hyper-mean chunks, then the reconstructed
    chunks of the window, oldest first; checked against the map given to synthesis."""
    seen, captured = {}, {}
    hooks = [net.cc_mean_transforms2[k].register_forward_pre_hook(
        lambda module, args, k=k: seen.__setitem__(k, args[0])) for k in range(24)]
    hooks.append(net.h_mean_s.register_forward_hook(
        lambda module, args, out: captured.__setitem__("means", out)))
    hooks.append(net.syn_layers[0].register_forward_pre_hook(
        lambda module, args: captured.__setitem__("tokens", args)))
    try:
        with torch.inference_mode():
            net(torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)))
    finally:
        for hook in hooks:
            hook.remove()
    tokens, height, width = captured["tokens"]
    y_hat = tokens.view(1, height, width, 384).permute(0, 3, 1, 2)
    h, w = height // 2, width // 2

    def chunk(x, group, row, col):
        return x[:, 64 * group:64 * (group + 1), h * row:h * (row + 1), w * col:w * (col + 1)]

    hyper = torch.cat([chunk(captured["means"], *p) for p in reference_order()], 1)
    for k in range(24):
        window = range(max(0, k - 12), k)
        expected = torch.cat([hyper] + [chunk(y_hat, *reference_order()[j]) for j in window], 1)
        assert seen[k].shape[1] == 1536 + 64 * len(window)
        assert torch.equal(seen[k], expected), k


def test_official_checkpoint_loads_strictly_and_codes_byte_exactly(codec, checkpoint,
                                                                   sample_pixels):
    assert codec.pad_multiple == 64 and tuple(codec.qualities) == (1,)
    assert any("rebuilt with update()" in note for note in codec.notes)
    for height, width in [(64, 64), (50, 70)]:
        image = np.ascontiguousarray(sample_pixels[:height, :width])
        data = assert_decodes_to_forward(codec, image)
        stream = unpack(data)
        left, right, top, bottom = padding(height, width, 64)
        assert stream.shape == ((height + top + bottom) // 64, (width + left + right) // 64)
        assert len(stream.strings) == 2 and len(stream.strings[0]) > 50


def test_decompress_reproduces_forward_exactly(codec):
    net = codec.model(1)
    x = torch.rand(1, 3, 64, 128, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        out = net(x)
        coded = net.compress(x)
        decoded = net.decompress(coded["strings"], coded["shape"])["x_hat"]
    assert torch.equal(decoded, out["x_hat"].clamp(0, 1))
    assert out["likelihoods"]["y"].shape == (1, 1536, 2, 4)  # chunk-major, as the original
    assert out["likelihoods"]["z"].shape == (1, 192, 1, 2)


def test_fresh_process_decodes_the_bytes(checkpoint):
    done = run_cli("verify", "shen2023", "--checkpoint", str(checkpoint), "--images", "1",
                   "--crop", "64", "--tolerance-db", "30",
                   "--max-rate-gap", "100",  # a random model's estimate is far off
                   timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    line = next(x for x in done.stdout.splitlines() if x.strip().startswith("1 "))
    assert " ok " in line and line.count("True") == 2


def test_mismatched_file_is_refused_with_the_differences(net, tmp_path):
    own = net.state_dict()
    state = {f"module.{k}": v for k, v in list(own.items())[:40]}
    state["module.cc_mean_transforms2.0.0.weight"] = own["cc_mean_transforms2.0.0.weight"]
    state["module.cc_mean_transforms.0.0.weight"] = torch.zeros(1)
    path = tmp_path / "partial.pth.tar"
    torch.save({"state_dict": state}, path)
    with pytest.raises(CheckpointMismatch) as raised:
        Shen2023(checkpoint=str(path)).model(1)
    message = str(raised.value)
    assert "missing from the file (7818 keys)" in message
    assert "not in the network (1 keys)" in message and "cc_mean_transforms.0" in message
    assert "Shen & Liu 2023" in message


def test_lenient_loads_what_fits_and_reports_every_skipped_entry(net):
    state = dict(net.state_dict())
    del state["lrp_transforms2.5.0.bias"]
    state["h_s.0.weight"] = torch.zeros(3)
    state["end_conv.0.bias"] = torch.zeros(7)
    state["entropy_bottleneck.matrices.0"] = state.pop("entropy_bottleneck._matrix0")
    skipped = load_lenient(net, state)
    assert sorted(skipped) == sorted([
        "end_conv.0.bias (file (7,), network (192,))",
        "h_s.0.weight (not in the network)",
        "lrp_transforms2.5.0.bias (missing from the file)"])
    assert Shen2023.accepted_options == ("checkpoint", "device", "lenient")
    assert Shen2023(lenient=True).fingerprint() != Shen2023().fingerprint()


def test_lenient_codec_option(tmp_path):
    torch.manual_seed(0)
    state = {"module.patch_embed.proj.weight": torch.zeros(48, 3, 2, 2),
             "module.cc_mean_transforms.0.0.weight": torch.zeros(1)}
    path = tmp_path / "partial.ckpt"
    torch.save({"state_dict": state}, path)
    codec = create_codec("shen2023", checkpoint=str(path), lenient=True)
    net = codec.model(1)
    assert torch.equal(net.patch_embed.proj.weight, torch.zeros(48, 3, 2, 2))
    assert "cc_mean_transforms.0.0.weight (not in the network)" in codec.skipped
    assert len(codec.skipped) == 1 + 7859 - 1
    assert re.search(r"lenient load, 7859 entries skipped", codec.notes[0])
