"""STF and WACNN (harness.models): the original layouts, official-format checkpoints
through the codec adapter, byte-exact round trips, entropy-bottleneck arithmetic.

No released weights can be downloaded here: checkpoints are random weights saved the
way the authors' train.py saves them. The key lists in tests/fixtures/models/ are the
state_dicts of the original classes (source named in each file).
"""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from compressai.entropy_models import EntropyBottleneck

from harness.checkpoints import CheckpointMismatch, load_strict, read_manifest
from harness.codecs.learned import padding, unpack
from harness.codecs.transformers import SHIPPED_MANIFESTS, released_checkpoints
from harness.errors import CodecUnavailable
from harness.models import create, describe_layout, infer_config
from harness.models.layers import LegacyEntropyBottleneck
from harness.registry import create_codec
from tests.conftest import assert_decodes_to_forward

FIXTURES = Path(__file__).parent / "fixtures" / "models"
# a layer whose weights are scaled up so that y is not all zeros with random weights
GAIN = {"stf": "layers.3.blocks.1.mlp.fc2.weight", "wacnn": "g_a.7.weight",
        "tcm": "g_a.9.weight"}


def original_layout(name: str) -> list[list]:
    return json.loads((FIXTURES / f"{name}.json").read_text())["keys"]


def layout_of(net) -> list[list]:
    buffers = {k for k, _ in net.named_buffers()}
    return [[k, list(v.shape), str(v.dtype).removeprefix("torch."),
             "buffer" if k in buffers else "param"] for k, v in net.state_dict().items()]


def trained_like(net, name: str, seed: int = 0) -> dict:
    """The net's random weights, with a plausible entropy bottleneck and a non-zero y."""
    generator = torch.Generator().manual_seed(seed)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    for key, value in state.items():
        if (key.startswith("entropy_bottleneck.") and value.is_floating_point()
                and value.numel() > 3 and not key.endswith("quantiles")):
            state[key] = value + 0.5 * torch.randn(value.shape, generator=generator)
    quantiles = state["entropy_bottleneck.quantiles"]
    median = 0.5 * torch.randn(quantiles.shape[0], generator=generator)
    quantiles[:, 0, 1] = median
    quantiles[:, 0, 0] = median - 4 - 8 * torch.rand(quantiles.shape[0], generator=generator)
    quantiles[:, 0, 2] = median + 4 + 8 * torch.rand(quantiles.shape[0], generator=generator)
    state[GAIN[name]] = state[GAIN[name]] * 4
    return state


def legacy_names(state: dict) -> dict:
    """Entropy-bottleneck parameters as CompressAI <= 1.2.5 named them (_matrix0 ...)."""
    singular = {"biases": "bias", "matrices": "matrix", "factors": "factor"}
    return {re.sub(r"^entropy_bottleneck\.(biases|matrices|factors)\.(\d+)$",
                   lambda m: f"entropy_bottleneck._{singular[m[1]]}{m[2]}", k): v
            for k, v in state.items()}


def save_official(state: dict, path: Path, stale: dict | None = None) -> Path:
    """Save as the authors' train.py does: DataParallel names, optimizer states beside."""
    wrapped = {f"module.{k}": v for k, v in {**state, **(stale or {})}.items()}
    group = {"lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0,
             "params": list(range(3))}
    torch.save({"epoch": 41, "state_dict": wrapped, "loss": torch.tensor(1.25),
                "optimizer": {"state": {}, "param_groups": [group]},
                "aux_optimizer": {"state": {}, "param_groups": [dict(group, lr=1e-3)]},
                "lr_scheduler": {"factor": 0.3, "patience": 4, "best": 1.2,
                                 "last_epoch": 41, "_last_lr": [1e-4]}}, path)
    return path


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    return {"stf": create("stf"), "wacnn": create("wacnn")}


@pytest.fixture(scope="module")
def checkpoints(nets, tmp_path_factory):
    folder = tmp_path_factory.mktemp("released")
    stale = {"h_s.0.weight": torch.zeros(192, 320, 3, 3), "h_s.0.bias": torch.zeros(192)}
    # STF/WACNN keep the fork's names (_matrix0 ...) natively; the files carry h_s leftovers
    return {name: save_official(trained_like(net, name), folder / f"{name}.pth.tar", stale)
            for name, net in nets.items()}


@pytest.mark.parametrize("name", ["stf", "wacnn"])
def test_state_dict_layout_equals_the_original(name, nets):
    expected = original_layout(name)
    assert layout_of(nets[name]) == expected  # keys, order, shapes, dtypes, buffers
    params = json.loads((FIXTURES / f"{name}.json").read_text())["n_params"]
    assert sum(p.numel() for p in nets[name].parameters()) == params


@pytest.mark.parametrize("name", ["stf", "wacnn"])
@pytest.mark.parametrize("height,width", [(200, 328), (64, 64)])
def test_official_checkpoint_codes_byte_exactly(name, height, width, checkpoints,
                                                sample_pixels):
    codec = create_codec(name, checkpoint=str(checkpoints[name]))
    assert (codec.pad_multiple, codec.pad_minimum) == (64, 0)
    image = np.ascontiguousarray(sample_pixels[:height, :width])
    data = assert_decodes_to_forward(codec, image)
    stream = unpack(data)
    left, right, top, bottom = padding(height, width, 64)
    assert stream.shape == ((height + top + bottom) // 64, (width + left + right) // 64)
    assert any("stale h_s.*" in note for note in codec.notes)
    assert any("rebuilt with update()" in note for note in codec.notes)


def test_decompress_reproduces_forward_exactly(checkpoints):
    net = create_codec("wacnn", checkpoint=str(checkpoints["wacnn"])).model(1)
    x = torch.rand(1, 3, 64, 128, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        out = net(x)
        coded = net.compress(x)
        decoded = net.decompress(coded["strings"], coded["shape"])["x_hat"]
    assert torch.equal(decoded, out["x_hat"].clamp(0, 1))
    assert set(out["likelihoods"]) == {"y", "z"}
    assert out["likelihoods"]["y"].shape == (1, 320, 4, 8)
    assert out["likelihoods"]["z"].shape == (1, 192, 1, 2)
    assert len(coded["strings"][0][0]) > 100  # y is not all zeros


def entropy_bottleneck_names(state: dict, style: str) -> dict:
    """Rename _bias0-style parameters to CompressAI's "lists" (_biases.0, < 1.1) or
    "modern" (biases.0, >= 1.2.6) convention."""
    plural = {"bias": "biases", "matrix": "matrices", "factor": "factors"}

    def rename(key: str) -> str:
        match = re.match(r"^entropy_bottleneck\._(bias|matrix|factor)(\d+)$", key)
        if not match:
            return key
        kind, index = plural[match[1]], match[2]
        return f"entropy_bottleneck.{'_' if style == 'lists' else ''}{kind}.{index}"

    return {rename(k): v for k, v in state.items()}


def test_every_entropy_bottleneck_naming_convention_loads(nets):
    state = nets["wacnn"].state_dict()
    target = create("wacnn")
    for style in ("fork", "lists", "modern"):
        variant = state if style == "fork" else entropy_bottleneck_names(state, style)
        assert (variant.keys() == state.keys()) == (style == "fork")
        variant = {f"module.{k}": v for k, v in variant.items()}
        assert target.conform_state_dict(variant) == []
        assert variant.keys() == state.keys(), style
    load_strict(target, variant, style)
    loaded = target.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


def test_stored_cdf_tables_are_used_as_stored(nets):
    net = create("wacnn")
    net.load_state_dict(trained_like(nets["wacnn"], "wacnn", seed=5))
    assert net.update() is True  # tables were absent
    stored = {k: v.clone() for k, v in net.state_dict().items()}
    stored["entropy_bottleneck._quantized_cdf"][0, 1] += 1  # a table no update() makes
    fresh = create("wacnn")
    load_strict(fresh, stored, "stored tables")
    assert fresh.update() is False
    assert torch.equal(fresh.entropy_bottleneck._quantized_cdf,
                       stored["entropy_bottleneck._quantized_cdf"])
    assert torch.equal(fresh.gaussian_conditional._quantized_cdf,
                       stored["gaussian_conditional._quantized_cdf"])


def test_missing_tables_are_rebuilt_with_the_sign_flipped_pmf():
    torch.manual_seed(2)  # weights for which the two pmf formulas round differently
    legacy = LegacyEntropyBottleneck(64)
    with torch.no_grad():
        for name, parameter in legacy.named_parameters():
            if name != "quantiles":
                parameter.add_(0.5 * torch.randn_like(parameter))
        median = 0.5 * torch.randn(64)
        legacy.quantiles[:, 0, 1] = median
        legacy.quantiles[:, 0, 0] = median - 4 - 8 * torch.rand(64)
        legacy.quantiles[:, 0, 2] = median + 4 + 8 * torch.rand(64)
    legacy.update(force=True)

    medians = legacy.quantiles[:, 0, 1]
    minima = torch.ceil(medians - legacy.quantiles[:, 0, 0]).int().clamp(min=0)
    maxima = torch.ceil(legacy.quantiles[:, 0, 2] - medians).int().clamp(min=0)
    lengths = minima + maxima + 1
    samples = torch.arange(int(lengths.max()))[None, :] + (medians - minima)[:, None, None]
    with torch.no_grad():
        lower = legacy._logits_cumulative(samples - 0.5, stop_gradient=True)
        upper = legacy._logits_cumulative(samples + 0.5, stop_gradient=True)
        flip = -torch.sign(lower + upper)
        pmf = (torch.sigmoid(flip * upper) - torch.sigmoid(flip * lower)).abs()[:, 0]
        tail = torch.sigmoid(lower[:, 0, :1]) + torch.sigmoid(-upper[:, 0, -1:])
    expected = legacy._pmf_to_cdf(pmf, tail, lengths, int(lengths.max()))
    assert torch.equal(legacy._quantized_cdf, expected)

    plain = EntropyBottleneck(64)  # CompressAI >= 1.2.5: sigmoid(upper) - sigmoid(lower)
    renamed = entropy_bottleneck_names(
        {f"entropy_bottleneck.{k}": v for k, v in legacy.state_dict().items()}, "modern")
    plain.load_state_dict({k.split(".", 1)[1]: v for k, v in renamed.items()
                           if not k.split(".", 1)[1].startswith("_")}, strict=False)
    plain.update(force=True)
    assert plain._quantized_cdf.shape == legacy._quantized_cdf.shape
    assert not torch.equal(plain._quantized_cdf, legacy._quantized_cdf)
    legacy.eval()
    plain.eval()
    z = 4 * torch.randn(1, 64, 3, 5)
    assert torch.allclose(legacy(z)[1], plain(z)[1], atol=1e-6)


def test_a_checkpoint_that_does_not_fit_gets_a_readable_diff(nets):
    state = {k: v for k, v in nets["wacnn"].state_dict().items() if not k.startswith("g_s.8.")}
    state["g_a.99.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointMismatch) as error:
        load_strict(create("wacnn"), state, "broken.pth", hint=describe_layout(state))
    message = str(error.value)
    assert "missing from the file" in message and "g_s.8: weight, bias" in message
    assert "not in the network" in message and "g_a.99" in message
    assert "looks like a WACNN checkpoint (N=192, M=320)" in message

    tcm = create("tcm", N=64).state_dict()
    codec = create_codec("wacnn")
    net = codec.build(tcm, 1)  # WACNN's defaults: nothing to infer from a TCM file
    with pytest.raises(CheckpointMismatch, match="looks like a TCM small checkpoint"):
        load_strict(net, tcm, "tcm.pth", hint=codec.layout_hint(tcm))


def test_config_is_inferred_from_shapes(nets):
    assert infer_config("wacnn", nets["wacnn"].state_dict()) == {"N": 192, "M": 320}
    assert infer_config("stf", nets["stf"].state_dict()) == {}
    assert describe_layout(nets["stf"].state_dict()).startswith("this file looks like an STF")


@pytest.mark.parametrize("codec_name", ["stf", "wacnn", "tcm", "tcm-large"])
def test_shipped_manifests_list_the_released_checkpoints(codec_name, tmp_path, monkeypatch):
    manifest = read_manifest(SHIPPED_MANIFESTS / f"{codec_name}.toml")
    assert manifest.codec == codec_name and released_checkpoints(codec_name) is not None
    entries = sorted(manifest.entries, key=lambda e: e.quality)
    codec = create_codec(codec_name)
    assert [e.quality for e in entries] == [float(q) for q in codec.qualities]
    lambdas = [e.lmbda for e in entries]
    assert lambdas == sorted(lambdas) and len(set(lambdas)) == len(lambdas)
    assert all(e.url.startswith("https://drive.google.com/file/d/") and e.path is None
               and e.metric == "mse" for e in entries)
    expected = {"stf": [0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483],
                "wacnn": [0.0018, 0.0035, 0.0067, 0.025],
                "tcm": [0.0025, 0.0035, 0.0067, 0.013, 0.025, 0.05],
                "tcm-large": [0.05]}[codec_name]
    assert all(math.isclose(a, b) for a, b in zip(lambdas, expected, strict=True))

    monkeypatch.setenv("HARNESS_CHECKPOINTS", str(tmp_path))
    with pytest.raises(CodecUnavailable) as error:
        codec.weights_path(entries[-1].quality)
    message = str(error.value)
    assert f"harness checkpoints add {codec_name}" in message and entries[-1].url in message


@pytest.mark.slow
def test_a_large_image_with_an_odd_multiple_of_64_round_trips(checkpoints, sample_pixels):
    codec = create_codec("wacnn", checkpoint=str(checkpoints["wacnn"]))
    tiled = np.tile(sample_pixels, (3, 3, 1))[:1200, :1200]  # pads to 1216, 19 x 64
    image = np.ascontiguousarray(tiled)
    decoded = codec.decode(codec.encode(image, 1))
    assert np.array_equal(decoded, codec.forward(image, 1)[0])
