"""TIC (harness.models.tic): both original layouts, official-format checkpoints through
the codec adapter, byte-exact round trips of the serial context-model coder, and the
documented difference between forward's estimate and the real bitstream."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.codecs.learned import unpack
from harness.codecs.tic_entroformer import tic_config
from harness.models import create
from harness.registry import create_codec

FIXTURES = Path(__file__).parent / "fixtures" / "models"


def trained_like(net, seed: int = 0) -> dict:
    """Random weights with a plausible entropy bottleneck and a y of useful size."""
    generator = torch.Generator().manual_seed(seed)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    for key, value in state.items():
        if (key.startswith("entropy_bottleneck.") and value.is_floating_point()
                and value.numel() > 3 and not key.endswith("quantiles")):
            state[key] = value + 0.5 * torch.randn(value.shape, generator=generator)
    quantiles = state["entropy_bottleneck.quantiles"]
    quantiles[:, 0, 0], quantiles[:, 0, 1], quantiles[:, 0, 2] = -8.0, 0.0, 8.0
    state["g_a6.weight"] = state["g_a6.weight"] * 8
    return state


def save_official(state: dict, path: Path) -> Path:
    """As the authors' train.py saves: DataParallel names, CDF buffers still empty."""
    wrapped = {f"module.{k}": v for k, v in state.items()}
    torch.save({"epoch": 3, "state_dict": wrapped, "loss": torch.tensor(1.0)}, path)
    return path


@pytest.fixture(scope="module")
def net2022():
    torch.manual_seed(0)
    return create("tic", revision="2022")


@pytest.fixture(scope="module")
def checkpoint(net2022, tmp_path_factory):
    state = trained_like(net2022)
    assert "entropy_bottleneck._matrix0" in state and "g_s.1.beta" in state
    return save_official(state, tmp_path_factory.mktemp("tic") / "tic-q3.pth.tar")


@pytest.mark.parametrize("revision,fixture", [("2022", "tic2022"), ("head", "tic_head")])
def test_state_dict_layout_equals_the_original(revision, fixture, net2022):
    net = net2022 if revision == "2022" else create("tic", revision=revision)
    reference = json.loads((FIXTURES / f"{fixture}.json").read_text())["keys"]
    assert [[k, list(v.shape)] for k, v in net.state_dict().items()] == reference


def test_head_quality_5_to_8_widths():
    net = create("tic", revision="head", N=192, M=320)
    assert sum(p.numel() for p in net.parameters()) == 23_924_948
    assert tic_config(net.state_dict()) == {"N": 192, "M": 320, "revision": "head"}


def test_official_checkpoint_codes_byte_exactly(checkpoint, sample_pixels):
    codec = create_codec("tic", checkpoint=str(checkpoint))
    assert codec.pad_multiple == 128
    image = np.ascontiguousarray(sample_pixels[:100, :120])
    data = codec.encode(image, 3)
    assert codec.encode(image, 3) == data
    assert unpack(data).shape == (2, 2)  # z of the 128x128 padded image
    decoded = codec.decode(data)
    fresh = create_codec("tic", checkpoint=str(checkpoint)).decode(data)
    assert decoded.shape == image.shape and np.array_equal(decoded, fresh)
    net = codec.model(3)
    assert (net.N, net.M, net.revision) == (128, 192, "2022")


def test_serial_decoder_reproduces_the_encoder_and_differs_from_forward(checkpoint):
    net = create_codec("tic", checkpoint=str(checkpoint)).model(3)
    x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        out = net.compress(x)
        first = net.decompress(out["strings"], out["shape"])["x_hat"]
        again = net.decompress(out["strings"], out["shape"])["x_hat"]
        forward = net(x)
    assert torch.equal(first, again)
    # forward decodes round(y), the coder q + mu: documented mismatch
    assert not torch.equal(first, forward["x_hat"].clamp(0, 1))
    estimated = sum(-torch.log2(v).sum().item() for v in forward["likelihoods"].values())
    real = 8 * sum(len(s[0]) for s in out["strings"])
    assert estimated > 0 and real > 0 and abs(estimated - real) > 1


def test_context_model_at_one_position_equals_the_map():
    torch.manual_seed(2)
    cam = create("tic", revision="head").context_prediction.eval()
    y = torch.randn(1, 192, 6, 7)
    with torch.inference_mode():
        full = cam(y)
        padded = torch.nn.functional.pad(y, (2, 2, 2, 2))
        one = cam.at(padded, 3, 4)
    torch.testing.assert_close(one[0, :, 0, 0], full[0, :, 3, 4], rtol=1e-5, atol=1e-5)


def test_sizes_that_are_not_multiples_of_128_are_refused(net2022):
    with pytest.raises(ValueError, match="multiples of 128"), torch.inference_mode():
        net2022.eval()(torch.rand(1, 3, 64, 64))


def test_unknown_revision_refused():
    with pytest.raises(ValueError, match=re.escape("revision is one of 2022, head")):
        create("tic", revision="2024")
