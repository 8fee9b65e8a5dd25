"""TCM (harness.models.tcm): the original layouts for N=64 and N=128, official-format
checkpoints through the codec adapter (N read from the shapes), byte-exact round
trips with TCM's padding, and a checkpoint of the wrong width refused readably."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.checkpoints import (
    CheckpointEntry,
    CheckpointMismatch,
    Manifest,
    load_strict,
    write_manifest,
)
from harness.codecs.learned import padding, unpack
from harness.codecs.transformers import TCMLarge
from harness.models import create, describe_layout, infer_config
from harness.registry import create_codec
from tests.conftest import assert_decodes_to_forward, run_cli
from tests.test_models_stf import layout_of, legacy_names, save_official, trained_like

FIXTURES = Path(__file__).parent / "fixtures" / "models"


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return create("tcm", N=64)


@pytest.fixture(scope="module")
def checkpoint(small, tmp_path_factory):
    """A TCM small file as 2023's train.py wrote it: module. names, _matrix0 ... names."""
    state = legacy_names(trained_like(small, "tcm"))
    assert "entropy_bottleneck._matrix0" in state
    return save_official(state, tmp_path_factory.mktemp("tcm") / "tcm-n64.pth.tar")


@pytest.mark.parametrize("n", [64, 128])
def test_state_dict_layout_equals_the_original(n, small):
    fixture = json.loads((FIXTURES / f"tcm_N{n}.json").read_text())
    net = small if n == 64 else create("tcm", N=n)
    assert layout_of(net) == fixture["keys"]  # keys, order, shapes, dtypes, buffers
    assert sum(p.numel() for p in net.parameters()) == fixture["n_params"]


@pytest.mark.parametrize("height,width", [(200, 328), (64, 64)])
def test_official_checkpoint_codes_byte_exactly(height, width, checkpoint, sample_pixels):
    codec = create_codec("tcm", checkpoint=str(checkpoint))
    assert (codec.pad_multiple, codec.pad_minimum) == (128, 256)
    image = np.ascontiguousarray(sample_pixels[:height, :width])
    data = assert_decodes_to_forward(codec, image)
    left, right, top, bottom = padding(height, width, 128, 256)
    padded = (height + top + bottom, width + left + right)
    assert padded[0] % 128 == 0 and padded[1] % 128 == 0 and min(padded) >= 256
    assert unpack(data).shape == (padded[0] // 64, padded[1] // 64)
    net = codec.model(1)
    assert (net.N, net.M) == (64, 320)  # read from the checkpoint's shapes


def test_forward_returns_what_the_original_returns(checkpoint):
    net = create_codec("tcm", checkpoint=str(checkpoint)).model(1)
    x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        out = net(x)
    assert out["likelihoods"]["y"].shape == (1, 320, 16, 16)
    assert out["likelihoods"]["z"].shape == (1, 192, 4, 4)
    assert {k: v.shape for k, v in out["para"].items()} == {
        "means": (1, 320, 16, 16), "scales": (1, 320, 16, 16), "y": (1, 320, 16, 16)}
    with pytest.raises(ValueError, match="at least 256x256"), torch.inference_mode():
        net(x[:, :, :128, :128])


def test_a_checkpoint_of_the_other_width_is_refused_with_a_readable_diff(small):
    state = small.state_dict()
    assert infer_config("tcm", state) == {"N": 64, "M": 320}
    large = create("tcm", N=128)
    with pytest.raises(CheckpointMismatch) as error:
        load_strict(large, state, "tcm-n64.pth.tar", hint=describe_layout(state))
    message = str(error.value)
    assert "tcm-n64.pth.tar does not fit TCM" in message
    assert "different shapes" in message
    assert "g_a.0.conv1.weight: file (128, 3, 3, 3), network (256, 3, 3, 3)" in message
    assert "looks like a TCM small checkpoint (N=64, M=320)" in message


def test_a_small_file_registered_as_the_large_model_is_refused(checkpoint, tmp_path,
                                                               monkeypatch):
    monkeypatch.setenv("HARNESS_CHECKPOINTS", str(tmp_path))
    write_manifest(Manifest("tcm-large", [CheckpointEntry(1.0, str(checkpoint))]))
    codec = TCMLarge()
    with pytest.raises(CheckpointMismatch) as error:
        codec.prepare(1)
    assert "released model with N=128; the registered file has N=64" in str(error.value)
    assert "looks like a TCM small checkpoint" in str(error.value)


def test_registered_checkpoint_runs_from_the_command_line(checkpoint, tmp_path, photo_folder):
    env = {"HARNESS_CHECKPOINTS": str(tmp_path / "manifests")}
    added = run_cli("checkpoints", "add", "tcm", "--quality", "1", "--path", str(checkpoint),
                    env=env)
    assert added.returncode == 0, added.stderr
    ran = run_cli("run", "--datasets", str(photo_folder), "--codecs", "tcm", "--qualities", "1",
                  "--jobs", "1", "--store", str(tmp_path / "r.sqlite"), "--no-progress",
                  env=env)
    assert ran.returncode == 0, ran.stderr
    assert "Traceback" not in ran.stderr
