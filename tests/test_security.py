"""Security properties that hold for the whole code base (read from the source)."""

import ast
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parents[1] / "harness"


def _calls():
    for path in HARNESS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                yield path, node


def _name(call: ast.Call) -> str:
    func = call.func
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


def test_no_shell_string_is_ever_run():
    offenders = []
    for path, call in _calls():
        name = _name(call)
        if name in ("os.system", "os.popen", "subprocess.getoutput",
                    "subprocess.getstatusoutput"):
            offenders.append(f"{path.name}:{call.lineno} {name}")
        for keyword in call.keywords:
            if keyword.arg == "shell" and not (isinstance(keyword.value, ast.Constant)
                                               and keyword.value.value is False):
                offenders.append(f"{path.name}:{call.lineno} shell=")
    assert not offenders, offenders


def test_every_torch_load_is_weights_only_or_restricted():
    """weights_only=True, or (Entroformer's pickled modules) our restricted unpickler."""
    loads = [(path, call) for path, call in _calls() if _name(call) == "torch.load"]
    assert loads, "expected the checkpoint loader to call torch.load"
    for path, call in loads:
        flags = {k.arg: k.value for k in call.keywords}
        weights_only = isinstance(flags.get("weights_only"), ast.Constant) and \
            flags["weights_only"].value is True
        restricted = isinstance(flags.get("pickle_module"), ast.Name) and \
            flags["pickle_module"].id.startswith("_Restricted")
        assert weights_only or restricted, f"{path.name}:{call.lineno}"


# --- checkpoints never run code -------------------------------------------------------------

EVIL_SCRIPT = """
import sys, torch

class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    @torch.jit.export
    def __getstate__(self):
        return (self.w, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, bool]):
        print("SIDE-EFFECT: __setstate__ ran")
        self.w = state[0]
        self.training = state[1]

    def forward(self, x):
        return x
"""


def test_a_torchscript_checkpoint_runs_nothing_on_any_load_path(tmp_path, capfd):
    """A TorchScript archive whose ``__setstate__`` prints when it is loaded."""
    import subprocess
    import sys

    import torch

    from harness.checkpoints import CheckpointError, read_state_dict
    from harness.models.entroformer import read_official_checkpoint
    from tests.conftest import run_cli

    evil = tmp_path / "evil.pth"
    (tmp_path / "make_evil.py").write_text(
        EVIL_SCRIPT + f"\ntorch.jit.script(M()).save({str(evil)!r})\n")
    subprocess.run([sys.executable, str(tmp_path / "make_evil.py")], check=True, timeout=120)
    torch.jit.load(str(evil))  # the archive does run its code when loaded as TorchScript
    assert "SIDE-EFFECT" in capfd.readouterr().out
    for reader in (read_state_dict, read_official_checkpoint):
        with pytest.raises(CheckpointError, match="TorchScript archive"):
            reader(evil)
    assert "SIDE-EFFECT" not in "".join(capfd.readouterr())
    env = {"HARNESS_CHECKPOINTS": str(tmp_path / "manifests"),
           "HARNESS_DATA": str(tmp_path / "data")}
    for args in (["checkpoints", "add", "entroformer", "--quality", "1", "--path", str(evil)],
                 ["models", "add", "mine", "--arch", "entroformer", "--checkpoints",
                  str(evil)],
                 ["verify", "entroformer-parallel", "--checkpoint", str(evil)]):
        done = run_cli(*args, env=env)
        assert done.returncode == 2, (args, done.stdout + done.stderr)
        assert "TorchScript archive" in done.stderr and "Traceback" not in done.stderr
        assert "SIDE-EFFECT" not in done.stdout + done.stderr


def test_a_checkpoint_decompression_bomb_is_refused_before_inflating(tmp_path, monkeypatch):
    """A deflated record that unpacks far past the cap is refused from the zip directory."""
    import zipfile

    import torch

    from harness.checkpoints import CheckpointError, read_state_dict

    plain = tmp_path / "plain.pth"
    torch.save({"w": torch.zeros(1 << 20)}, plain)  # 4 MiB of zeros
    bomb = tmp_path / "bomb.pth"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(bomb, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info), compress_type=zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 100_000
    assert read_state_dict(bomb)["w"].numel() == 1 << 20  # within the cap: read as usual
    monkeypatch.setenv("HARNESS_MAX_CHECKPOINT_BYTES", str(1 << 20))
    with pytest.raises(CheckpointError, match="HARNESS_MAX_CHECKPOINT_BYTES"):
        read_state_dict(bomb)
