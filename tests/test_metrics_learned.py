"""lpips and dists: their weights come from a local folder, checked against published
sha256s. The official backbones cannot be had here, so the tests write random ones of
the right shapes (with our table's expected hash patched to match) and compare our
networks with the reference packages (lpips, DISTS_pytorch) given the same weights; the
linear layers and alpha/beta are the real files those packages ship, under their real
published hashes. Absent and wrong files are refused with a message naming the file."""

import dataclasses

import numpy as np
import pytest

from harness.checkpoints import CheckpointError, sha256_of
from harness.metrics import learned
from tests.conftest import run_cli

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")


@pytest.fixture
def folders(tmp_path, monkeypatch):
    """An empty data dir and torch hub dir: no weights anywhere but what a test writes."""
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path


def write_backbone(kind, monkeypatch, seed=0):
    """Random torchvision weights as the official file, our table patched to its hash."""
    torch.manual_seed(seed)
    model = getattr(torchvision.models, kind)(weights=None)
    state = {k: v for k, v in model.state_dict().items() if k.startswith("features.")}
    path = learned.weights_dir() / learned.WEIGHTS[kind].name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    monkeypatch.setitem(learned.WEIGHTS, kind, dataclasses.replace(
        learned.WEIGHTS[kind], sha256=sha256_of(path)))
    return model


def pair(sample_pixels):
    a = sample_pixels[:64, :96]
    noise = np.random.default_rng(9).integers(-20, 21, a.shape)
    return a, np.clip(a.astype(int) + noise, 0, 255).astype(np.uint8)


def as_unit(image):
    return torch.from_numpy(image.astype(np.float32) / 255).permute(2, 0, 1)[None]


def test_lpips_matches_the_lpips_package_with_the_same_weights(folders, monkeypatch,
                                                              sample_pixels):
    lpips = pytest.importorskip("lpips")
    model = write_backbone("alexnet", monkeypatch)
    # the linear layers: the package's own file, verified against its published sha256
    assert learned.find(learned.WEIGHTS["lpips-alex"]) is not None
    a, b = pair(sample_pixels)
    ours = learned.LPIPS().compute(a, b)

    reference = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()
    for stage in (reference.net.slice1, reference.net.slice2, reference.net.slice3,
                  reference.net.slice4, reference.net.slice5):
        for index, layer in stage.named_children():
            layer.load_state_dict(model.features[int(index)].state_dict())
    with torch.inference_mode():
        theirs = reference(as_unit(a), as_unit(b), normalize=True).item()
    assert ours == pytest.approx(theirs, rel=1e-5)
    assert learned.LPIPS().compute(a, a) == 0.0


def test_dists_matches_the_dists_package_with_the_same_weights(folders, monkeypatch,
                                                              sample_pixels):
    dists_pt = pytest.importorskip("DISTS_pytorch.DISTS_pt")
    model = write_backbone("vgg16", monkeypatch)
    a, b = pair(sample_pixels)
    ours = learned.DISTS().compute(a, b)

    # the package builds torchvision's pretrained VGG16 (a download): give it ours
    monkeypatch.setattr(dists_pt.models, "vgg16", lambda **kwargs: model)
    reference = dists_pt.DISTS().eval()
    with torch.inference_mode():
        theirs = reference(as_unit(a), as_unit(b)).item()
    assert ours == pytest.approx(theirs, rel=1e-4)
    assert 0 < ours < 1
    assert learned.DISTS().compute(a, a) == pytest.approx(0.0, abs=1e-6)


def test_a_file_with_another_hash_is_refused(folders, monkeypatch, sample_pixels):
    write_backbone("alexnet", monkeypatch)
    path = learned.weights_dir() / "alexnet-owt-7be5be79.pth"
    monkeypatch.setitem(learned.WEIGHTS, "alexnet", dataclasses.replace(
        learned.WEIGHTS["alexnet"], sha256="7be5be79"))  # the published prefix again
    with pytest.raises(CheckpointError) as caught:
        learned.LPIPS().compute(*pair(sample_pixels))
    message = str(caught.value)
    assert str(path) in message and "7be5be79" in message and "refused" in message
    assert "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth" in message


def test_a_run_refuses_a_wrong_file_before_encoding(folders, photo_folder):
    path = folders / "data" / "weights" / "metrics" / "alexnet-owt-7be5be79.pth"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not the alexnet weights")
    env = {"HARNESS_DATA": str(folders / "data"), "TORCH_HOME": str(folders / "torch")}
    listed = run_cli("metrics", env=env).stdout
    line = next(x for x in listed.splitlines() if x.startswith("lpips"))
    assert "unavailable" in line and str(path) in line and "refused" in line
    ran = run_cli("run", "--codecs", "jpeg", "--datasets", str(photo_folder), "--qualities",
                  "50", "--store", str(folders / "r.sqlite"), "--no-report", "--metrics",
                  "lpips", env=env)
    assert ran.returncode == 2 and "refused" in ran.stderr and str(path) in ran.stderr
    assert not (folders / "r.sqlite").exists()


def test_absent_weights_are_named_by_harness_metrics_and_refused_by_run(folders,
                                                                      photo_folder):
    env = {"HARNESS_DATA": str(folders / "data"), "TORCH_HOME": str(folders / "torch")}
    listed = run_cli("metrics", env=env)
    assert listed.returncode == 0, listed.stderr
    line = next(x for x in listed.stdout.splitlines() if x.startswith("dists"))
    assert "unavailable" in line and "vgg16-397923af.pth" in line
    assert "https://download.pytorch.org/models/vgg16-397923af.pth" in line
    assert str(folders / "data" / "weights" / "metrics") in line

    ran = run_cli("run", "--codecs", "jpeg", "--datasets", str(photo_folder), "--qualities",
                  "50", "--store", str(folders / "r.sqlite"), "--no-report", "--metrics",
                  "lpips", env=env)
    assert ran.returncode == 2
    assert "alexnet-owt-7be5be79.pth" in ran.stderr and "starting 7be5be79" in ran.stderr
    assert not (folders / "r.sqlite").exists()  # refused before anything ran
