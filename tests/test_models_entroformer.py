"""Entroformer's official checkpoints (pickled whole modules) read by the restricted
unpickler: tensors extracted under the seven official prefixes, nothing executed,
anything unknown refused by name."""

import json
import os
import sys
import types
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from torch import nn

from harness.checkpoints import CheckpointError
from harness.models.entroformer import PARTS, read_official_checkpoint

FIXTURES = Path(__file__).parent / "fixtures" / "models"


def _official(module: str, name: str, build):
    """A class named as in the official code (module path and name), for pickling."""
    cls = type(name, (nn.Module,), {"__init__": build, "__module__": module,
                                    "__qualname__": name})
    return cls


def _encoder(self):
    nn.Module.__init__(self)
    self.encoder = nn.Sequential(nn.Conv2d(3, 4, 5, 2, 2), GDN(4))


def _gdn(self, ch=4):
    nn.Module.__init__(self)
    self.beta = nn.Parameter(torch.ones(ch))
    self.gamma = nn.Parameter(torch.eye(ch))


def _trans(self):
    nn.Module.__init__(self)
    self.config = Config()
    self.sos_pred_token = nn.Parameter(torch.randn(1, 1, 8))
    self.trans_blocks = nn.ModuleList([Block()])


def _block(self):
    nn.Module.__init__(self)
    self.attn = nn.Linear(8, 24, bias=False)
    self.act = nn.LeakyReLU(0.2)


def _entropy(self):
    nn.Module.__init__(self)
    self.mu = nn.Parameter(torch.zeros(1, 4, 1, 1))
    self.log_sigma = nn.Parameter(torch.zeros(1, 4, 1, 1))


class _Config:
    pass


GDN = _official("module.ops", "GDN", _gdn)
Balle2Encoder = _official("module.ballenet", "Balle2Encoder", _encoder)
Block = _official("module.entroformer_helper", "Block", _block)
TransDecoder = _official("module.entroformer", "TransDecoder", _trans)
Entropy = _official("module.prob_model", "Entropy", _entropy)
Config = type("Config", (_Config,), {"__module__": "module.entroformer_helper",
                                     "__qualname__": "Config"})


@pytest.fixture
def official_modules(monkeypatch):
    """The official module paths, importable while the test file is written."""
    for module, classes in {
        "module": [], "module.ops": [GDN], "module.ballenet": [Balle2Encoder],
        "module.entroformer_helper": [Block, Config], "module.entroformer": [TransDecoder],
        "module.prob_model": [Entropy],
    }.items():
        fake = types.ModuleType(module)
        for cls in classes:
            setattr(fake, cls.__name__, cls)
        monkeypatch.setitem(sys.modules, module, fake)


def test_pickled_modules_are_read_without_the_official_code(official_modules, tmp_path):
    torch.manual_seed(0)
    parts = {"encode": Balle2Encoder(), "decode": Balle2Encoder(), "cit_he": TransDecoder(),
             "cit_hd": TransDecoder(), "prob": Entropy(), "cit_ar": TransDecoder(),
             "cit_pn": nn.Sequential(nn.Conv2d(8, 16, 1), nn.LeakyReLU(0.2))}
    path = tmp_path / "model_epoch_1000.pth"
    torch.save(parts, path)
    expected = {f"{p}.{k}": v for p in PARTS for k, v in parts[p].state_dict().items()}
    for name in list(sys.modules):  # the official code is gone when reading
        if name == "module" or name.startswith("module."):
            del sys.modules[name]
    got = read_official_checkpoint(path)
    assert list(got) == list(expected)
    assert all(torch.equal(got[k], v) for k, v in expected.items())


def test_a_malicious_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    torch.save({"encode": Evil()}, path)
    with pytest.raises(CheckpointError, match=r"refusing to load (posix|os|nt)\.system"):
        read_official_checkpoint(path)
    assert not marker.exists()


def test_unknown_classes_are_named(tmp_path):
    # a plain class (exceptions may pickle through a helper that other libraries install)
    path = tmp_path / "other.pth"
    torch.save({"encode": Fraction(1, 3)}, path)
    with pytest.raises(CheckpointError, match=r"fractions\.Fraction"):
        read_official_checkpoint(path)


def test_a_file_without_the_seven_modules_is_refused(tmp_path):
    path = tmp_path / "weights.pth"
    torch.save({"state_dict": {"a": torch.zeros(1)}}, path)
    with pytest.raises(CheckpointError, match="dict of the modules encode, decode"):
        read_official_checkpoint(path)


@pytest.mark.parametrize("variant,entries", [("unidirectional", 180), ("bidirectional", 179)])
def test_official_key_fixtures_have_the_seven_prefixes(variant, entries):
    keys = json.loads((FIXTURES / f"entroformer_{variant}.json").read_text())["keys"]
    assert len(keys) == entries
    assert {k.split(".")[0] for k, _ in keys} == set(PARTS)


@pytest.fixture(scope="module", params=["unidirectional", "bidirectional"])
def network(request):
    from harness.models.entroformer import Entroformer

    torch.manual_seed(0)
    return Entroformer(request.param).eval()


def test_state_dict_keys_and_shapes_equal_the_official_ones(network):
    keys = json.loads((FIXTURES / f"entroformer_{network.na}.json").read_text())["keys"]
    ours = [[k, list(v.shape)] for k, v in network.state_dict().items()]
    assert ours == keys


def test_forward_shapes_at_64x64(network):
    with torch.no_grad():
        out = network(torch.rand(1, 3, 64, 64))
    assert out["x_hat"].shape == (1, 3, 64, 64)
    assert out["likelihoods"]["y"].shape == (1, 384, 4, 4)
    assert out["likelihoods"]["z"].shape == (1, 192, 1, 1)
    assert 0 <= out["x_hat"].min() and out["x_hat"].max() <= 1
    for likelihood in out["likelihoods"].values():
        assert torch.isfinite(likelihood).all() and (likelihood > 0).all()
        assert (likelihood <= 1).all()
    with pytest.raises(ValueError, match="multiples of 64"):
        network(torch.rand(1, 3, 64, 96))


def _as_official_file(network, path):
    """The network pickled as the official code saves it: seven whole modules."""
    parts = {name: getattr(network, name) for name in PARTS}
    saved = {}
    for module in parts.values():
        for sub in module.modules():
            cls = type(sub)
            if cls.__module__.startswith("harness."):
                saved[sub] = cls
                sub.__class__ = Block
    try:
        torch.save(parts, path)
    finally:
        for sub, cls in saved.items():
            sub.__class__ = cls


def test_official_checkpoint_loads_strictly(network, official_modules, tmp_path):
    from harness.models.entroformer import Entroformer

    path = tmp_path / "model_epoch_1.pth"
    _as_official_file(network, path)
    flat = read_official_checkpoint(path)
    assert set(flat) == set(network.state_dict())
    other = Entroformer(network.na).eval()
    other.load_state_dict(flat, strict=True)
    for key, value in network.state_dict().items():
        assert torch.equal(other.state_dict()[key], value)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(other(x)["x_hat"], network(x)["x_hat"])
