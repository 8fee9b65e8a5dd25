"""Security properties that hold for the whole code base (read from the source)."""

import ast
from pathlib import Path

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
