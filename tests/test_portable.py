"""Portable bitstreams: a learned codec's bytes decode to the same image whatever the
encoder's and the decoder's thread counts (fresh processes, random weights of the
official layouts, small images)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.verify import cross_matrix, format_cross
from tests.test_models_entroformer import trained_like

THREADS = [1, 2]


@pytest.fixture(scope="module")
def entroformer_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("portable")
    files = {}
    for na, name in (("unidirectional", "entroformer"), ("bidirectional", "entroformer-parallel")):
        files[name] = folder / f"{na}.pth"
        torch.save(trained_like(na).state_dict(), files[name])
    return files


@pytest.mark.parametrize("name", ["entroformer", "entroformer-parallel"])
def test_entroformer_thread_matrix(name, entroformer_files, sample_pixels):
    """Every decoder gives the image the encoder's own setting gives. (The encoders'
    bytes may differ: the analysis transform's rounding may round a y element the
    other way.) Before the grid tables, decoding the other thread count's bytes gave
    errors up to 255."""
    image = np.ascontiguousarray(sample_pixels[100:164, 200:264])
    matrix = cross_matrix(name, {"checkpoint": str(entroformer_files[name])}, 1, image,
                          THREADS)
    assert matrix.worst() == 0, format_cross(name, matrix)
    assert not matrix.latents_differ() and len(matrix.latents) == 4, format_cross(name, matrix)


def test_the_gpu_column_runs_the_codec_on_the_gpu(entroformer_files, sample_pixels):
    """Where PyTorch sees a GPU, the matrix gains a "cuda" setting: bytes written on the
    GPU decode on the CPU and the other way round. Without one (this machine), the
    setting still reaches the codec as its device, which refuses it."""
    image = np.ascontiguousarray(sample_pixels[100:164, 200:264])
    options = {"checkpoint": str(entroformer_files["entroformer"])}
    if torch.cuda.is_available():
        matrix = cross_matrix("entroformer", options, 1, image, [1, "cuda"])
        assert matrix.worst() is not None and matrix.worst() <= 1, format_cross("gpu", matrix)
        assert not matrix.latents_differ(), format_cross("gpu", matrix)
    else:
        with pytest.raises(RuntimeError, match="could not encode at setting cuda"):
            cross_matrix("entroformer", options, 1, image, [1, "cuda"])


@pytest.mark.parametrize("na", ["unidirectional", "bidirectional"])
def test_entroformer_tables_survive_last_bit_differences(na, monkeypatch):
    """A decoder whose entropy parameters differ from the encoder's in the last bits
    (as another thread count, CPU or GPU gives) still decodes exactly: the tables come
    from the parameters' grid keys, not from their floats. Tables built from the floats
    fail this test."""
    from harness.models.entroformer import Entroformer

    net = trained_like(na)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        out = net.compress(x)
        exact = net.decompress(out["strings"], out["shape"])["y_hat"]
    noise = torch.Generator().manual_seed(0)
    order = Entroformer._coding_order

    def nudged(self, hyper, y_hat):
        for row, col, params in order(self, hyper, y_hat):
            wiggle = torch.randn(params.shape, generator=noise) * 1e-6
            yield row, col, params * (1 + wiggle)

    monkeypatch.setattr(Entroformer, "_coding_order", nudged)
    with torch.no_grad():
        decoded = net.decompress(out["strings"], out["shape"])["y_hat"]
    assert (exact != 0).float().mean() > 0.5
    assert torch.equal(decoded, exact)


def test_zoo_thread_matrix(tmp_path, sample_pixels):
    """A CompressAI zoo architecture (random weights): its scale-indexed tables already
    decode alike across thread counts."""
    from compressai.zoo import mbt2018_mean

    torch.manual_seed(0)
    model = mbt2018_mean(quality=1, pretrained=False).eval()
    with torch.no_grad():  # random weights give y all zeros: nothing to compare
        model.g_a[-1].weight.mul_(30)
        model.h_a[-1].weight.mul_(30)
    model.update(force=True)
    checkpoint = tmp_path / "random.pth"
    torch.save(model.state_dict(), checkpoint)
    image = np.ascontiguousarray(sample_pixels[:64, :64])
    matrix = cross_matrix("mbt2018-mean", {"checkpoint": str(checkpoint)}, 1, image, THREADS)
    assert matrix.worst() is not None and matrix.worst() <= 1, format_cross("zoo", matrix)
    assert not matrix.latents_differ(), format_cross("zoo", matrix)
    # the digests are of the decoded symbols: another image's differ
    other = cross_matrix("mbt2018-mean", {"checkpoint": str(checkpoint)}, 1,
                         np.ascontiguousarray(sample_pixels[64:128, 64:128]), [1])
    assert None not in (other.latents[(1, 1)], matrix.latents[(1, 1)])
    assert other.latents[(1, 1)] != matrix.latents[(1, 1)]


def test_latents_that_differ_fail_portability_whatever_the_pixels():
    """Equal pixels do not hide an entropy decode that went another way."""
    from harness.verify import CrossMatrix, portable_failures

    matrix = CrossMatrix([1, 2], max_error={(1, 1): 0, (1, 2): 0, (2, 1): 0, (2, 2): 0},
                         latents={(1, 1): "a", (1, 2): "b", (2, 1): "c", (2, 2): "c"})
    assert matrix.latents_differ() == [(1, 2)]
    assert "other latents" in portable_failures("x", matrix)[0]
    assert "DIFFERENT (1->2)" in format_cross("x", matrix)


def test_verify_cross_prints_the_matrix_and_the_report_shows_it(entroformer_files, tmp_path):
    from tests.conftest import run_cli

    store = tmp_path / "results.sqlite"
    assert run_cli("run", "--codecs", "jpeg", "--qualities", "50", "--no-report",
                   "--no-progress", "--store", str(store)).returncode == 0
    done = run_cli("verify", "entroformer", "--checkpoint", str(entroformer_files["entroformer"]),
                   "--qualities", "1", "--images", "1", "--crop", "64", "--cross",
                   "--store", str(store))
    assert done.returncode == 0, done.stderr
    assert "enc \\ dec" in done.stdout and "failed" not in done.stdout
    assert "latents: identical across decoders" in done.stdout
    out = tmp_path / "report"
    assert run_cli("report", "--store", str(store), "--out", str(out)).returncode == 0
    section = (out / "index.html").read_text().split('<section id="diagnostics">')[1]
    assert "entroformer" in section and "portable" in section and "<th>enc 1</th>" in section
    table = (out / "tables" / "portability.csv").read_text()
    assert "entroformer" in table and "identical" in table


def _random_checkpoint(name: str, folder) -> str:
    """Random weights of the official layout, saved as the authors save them (the other
    test modules' makers: a plausible entropy bottleneck, a non-zero y)."""
    from harness.models import create

    torch.manual_seed(0)
    if name in ("stf", "wacnn", "tcm"):
        from tests.test_models_stf import save_official, trained_like
        net = create("tcm", N=64) if name == "tcm" else create(name)
        return str(save_official(trained_like(net, name), folder / f"{name}.pth.tar"))
    if name == "tic":
        from tests.test_models_tic import save_official, trained_like
        return str(save_official(trained_like(create("tic", revision="2022")),
                                 folder / "tic.pth.tar"))
    from tests.test_models_shen2023 import trained_like
    path = folder / "shen2023.ckpt"
    torch.save({"state_dict": trained_like(create("shen2023").eval())}, path)
    return str(path)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["stf", "wacnn", "tcm", "tic", "shen2023"])
def test_transformer_codecs_thread_matrix(name, tmp_path, sample_pixels):
    """The other built-in learned codecs: every decoder within the synthesis rounding
    (1 level) of the decode at the encoder's own thread count."""
    size = 128 if name == "tic" else 64  # TIC pads to 128 anyway
    image = np.ascontiguousarray(sample_pixels[:size, :size])
    matrix = cross_matrix(name, {"checkpoint": _random_checkpoint(name, tmp_path)},
                          {"tic": 3}.get(name, 1), image, THREADS)
    assert matrix.worst() is not None and matrix.worst() <= 1, format_cross(name, matrix)
    assert not matrix.latents_differ(), format_cross(name, matrix)


def test_portable_gate(entroformer_files, sample_pixels):
    """The gate ``harness check --portable`` adds passes on a portable codec and names
    the codec when a decoder fails."""
    from harness.check import portable_gate
    from harness.runner import CodecSpec

    image = np.ascontiguousarray(sample_pixels[:64, :64])
    good = CodecSpec("entroformer", (("checkpoint", str(entroformer_files["entroformer"])),))
    gate = portable_gate([(good, good.create())], image)
    assert gate.name == "portable" and gate.passed, gate.message
    # the checkerboard model's file under the sequential codec: the encoders fail
    bad = CodecSpec("entroformer", (("checkpoint",
                                     str(entroformer_files["entroformer-parallel"])),))
    gate = portable_gate([(bad, bad.create())], image)
    assert not gate.passed and "entroformer could not encode" in gate.message
