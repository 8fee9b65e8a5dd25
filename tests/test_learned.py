"""Learned codecs through the adapter, on randomly initialised networks with the
official CompressAI layouts (no weights can be downloaded here)."""

import json
import pickle
import re

import numpy as np
import pytest
import torch

from harness.checkpoints import (
    CheckpointError,
    known_digests,
    read_state_dict,
    remember_digests,
    sha256_of,
)
from harness.codecs.learned import Bitstream, pack, padding, payload_bytes, unpack
from harness.errors import CodecUnavailable
from harness.registry import create_codec
from tests.conftest import run_cli

ZOO = ["bmshj2018-factorized", "bmshj2018-hyperprior", "mbt2018-mean", "mbt2018",
       "cheng2020-anchor", "cheng2020-attn"]


def _random_checkpoint(directory, architecture, quality=1, wrap=True):
    """A randomly initialised zoo network saved the way training scripts save them."""
    from compressai.zoo.image import _load_model

    torch.manual_seed(0)
    net = _load_model(architecture, "mse", quality)
    state = {f"module.{k}": v for k, v in net.state_dict().items()}  # DataParallel names
    path = directory / f"{architecture}-q{quality}.pth.tar"
    torch.save({"epoch": 1, "state_dict": state} if wrap else state, path)
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    return {arch: _random_checkpoint(folder, arch) for arch in ZOO}


@pytest.mark.parametrize("architecture", ZOO)
def test_every_zoo_architecture_decodes_from_bytes_in_a_fresh_process(architecture,
                                                                      checkpoints):
    done = run_cli("verify", architecture, "--checkpoint", str(checkpoints[architecture]),
                   "--images", "1", "--crop", "64", "--tolerance-db", "30",
                   # on a 64x64 crop the coder's few bytes of flush per string are
                   # 10-16 % of the rate; this test is about decoding, not the gap
                   "--max-rate-gap", "100")
    assert done.returncode == 0, done.stdout + done.stderr
    line = next(x for x in done.stdout.splitlines() if x.strip().startswith("1 "))
    assert " ok " in line and line.count("True") == 2  # same bytes, fresh process
    assert "rebuilt with update()" in done.stderr  # the random checkpoint had no CDFs


@pytest.mark.parametrize("height,width", [(200, 328), (1, 64), (65, 65), (64, 64)])
def test_odd_sizes_are_padded_and_cropped(height, width, checkpoints, sample_pixels):
    codec = create_codec("bmshj2018-hyperprior",
                         checkpoint=str(checkpoints["bmshj2018-hyperprior"]))
    image = np.ascontiguousarray(sample_pixels[:height, :width])
    data = codec.encode(image, 1)
    decoded = codec.decode(data)
    assert decoded.shape == image.shape and decoded.dtype == np.uint8
    forward, estimated_bpp = codec.forward(image, 1)
    assert np.array_equal(forward, decoded) and estimated_bpp > 0
    stream = unpack(data)
    assert (stream.height, stream.width) == (height, width)
    # centred zero padding to a multiple of 64
    left, right, top, bottom = padding(height, width, 64)
    assert (height + top + bottom) % 64 == 0 and abs(top - bottom) <= 1 and abs(left - right) <= 1


def test_bpp_counts_the_header_and_reports_the_payload(checkpoints, sample_pixels):
    codec = create_codec("mbt2018-mean", checkpoint=str(checkpoints["mbt2018-mean"]))
    data = codec.encode(np.ascontiguousarray(sample_pixels[:64, :64]), 1)
    stream = unpack(data)
    assert payload_bytes(data) == sum(len(s) for s in stream.strings) < len(data)
    assert stream.codec == "mbt2018-mean"  # the architecture, not the file's name


def test_bitstream_format_round_trips_and_refuses_damage():
    stream = Bitstream("x", 2.5, 200, 328, ((4, 6), 7), (b"abc", b"", b"\x00" * 300))
    data = pack(stream)
    assert unpack(data) == stream
    with pytest.raises(ValueError, match="truncated"):
        unpack(data[:-5])
    with pytest.raises(ValueError, match="bad magic"):
        unpack(b"JUNK" + data[4:])
    with pytest.raises(ValueError, match="stray bytes"):
        unpack(data + b"!")


def test_a_bitstream_of_another_codec_is_refused(checkpoints, sample_pixels):
    one = create_codec("mbt2018-mean", checkpoint=str(checkpoints["mbt2018-mean"]))
    other = create_codec("bmshj2018-hyperprior",
                         checkpoint=str(checkpoints["bmshj2018-hyperprior"]))
    data = one.encode(np.ascontiguousarray(sample_pixels[:64, :64]), 1)
    with pytest.raises(ValueError, match="written by the 'mbt2018-mean' network"):
        other.decode(data)


def test_a_checkpoint_of_another_architecture_gets_a_readable_diff(checkpoints):
    done = run_cli("verify", "mbt2018", "--checkpoint", str(checkpoints["bmshj2018-hyperprior"]))
    assert done.returncode == 2
    assert "does not fit JointAutoregressiveHierarchicalPriors" in done.stderr
    assert "missing from the file" in done.stderr and "context_prediction" in done.stderr
    assert "different shapes" in done.stderr and "h_s.0.weight" in done.stderr
    assert "fits the zoo architecture(s): bmshj2018-hyperprior" in done.stderr
    assert "Traceback" not in done.stderr


class Sneaky:
    def __reduce__(self):
        return (print, ("this ran",))


def test_a_checkpoint_with_pickled_objects_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "hook": Sneaky()}, path)
    with pytest.raises(CheckpointError, match="weights_only=True") as error:
        read_state_dict(path)
    assert "(it contains print)" in str(error.value)
    not_torch = tmp_path / "text.pth"
    not_torch.write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        read_state_dict(not_torch)
    plain_pickle = tmp_path / "dict.pkl"
    plain_pickle.write_bytes(pickle.dumps({"epoch": 3}))
    with pytest.raises(CheckpointError):
        read_state_dict(plain_pickle)


def test_manifest_checksum_mismatch_is_refused(tmp_path, checkpoints, photo_folder):
    env = {"HARNESS_CHECKPOINTS": str(tmp_path / "manifests")}
    copy = tmp_path / "q2.pth.tar"
    copy.write_bytes(checkpoints["bmshj2018-hyperprior"].read_bytes())
    added = run_cli("checkpoints", "add", "bmshj2018-hyperprior", "--quality", "2", "--path",
                    str(copy), "--metric", "mse", env=env)
    assert added.returncode == 0, added.stderr
    assert run_cli("checkpoints", "verify", env=env).returncode == 0
    store = str(tmp_path / "r.sqlite")
    ran = run_cli("run", "--datasets", str(photo_folder), "--codecs", "bmshj2018-hyperprior",
                  "--qualities", "2", "--jobs", "1", "--store", store, "--no-progress", env=env)
    assert ran.returncode == 0, ran.stderr
    assert "bmshj2018-hyperprior        2       2" in ran.stdout

    copy.write_bytes(copy.read_bytes()[:-10] + b"0123456789")  # the file changed
    verified = run_cli("checkpoints", "verify", env=env)
    assert verified.returncode == 1 and "the manifest says" in verified.stdout
    # the rows stored were measured with the listed file: reusing them needs no weights
    ran = run_cli("run", "--datasets", str(photo_folder), "--codecs", "bmshj2018-hyperprior",
                  "--qualities", "2", "--store", store, "--no-progress", "--no-report", env=env)
    assert ran.returncode == 0 and "2 reused" in ran.stdout, ran.stderr
    ran = run_cli("run", "--datasets", str(photo_folder), "--codecs", "bmshj2018-hyperprior",
                  "--qualities", "2", "--store", str(tmp_path / "new.sqlite"), "--no-progress",
                  "--no-report", env=env)  # measuring needs them: refused
    assert ran.returncode == 1
    assert "q=2 skipped" in ran.stderr and "not the one listed" in ran.stderr


def test_missing_weights_offline_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path))
    monkeypatch.setenv("HARNESS_CHECKPOINTS", str(tmp_path / "none"))
    import pooch

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(pooch, "retrieve", offline)
    codec = create_codec("cheng2020-attn-ms-ssim")
    with pytest.raises(CodecUnavailable) as error:
        codec.prepare(3)
    message = str(error.value)
    assert "cheng2020-attn-ms-ssim at quality 3" in message
    assert "compressai.s3.amazonaws.com" in message and "harness checkpoints add" in message


def test_run_measures_a_checkpoint_as_one_rate_point(tmp_path, checkpoints, photo_folder):
    store = tmp_path / "r.sqlite"
    ran = run_cli("run", "--datasets", str(photo_folder), "--codecs", "bmshj2018-factorized",
                  "--checkpoint", str(checkpoints["bmshj2018-factorized"]), "--jobs", "2",
                  "--store", str(store), "--no-progress")
    assert ran.returncode == 0, ran.stderr
    exported = run_cli("export", "--store", str(store), "--out", str(tmp_path / "out"))
    (path,) = (tmp_path / "out").glob("*/*.json")
    document = json.loads(path.read_text())
    assert exported.returncode == 0
    assert document["name"] == "bmshj2018-factorized:bmshj2018-factorized-q1"
    assert len(document["results"]["bpp"]) == 1


@pytest.mark.parametrize("style", ["_matrix0", "_matrices.0"])
def test_legacy_entropy_bottleneck_names_load(style, tmp_path, sample_pixels):
    """Files from older CompressAI releases and the authors' forks name these differently."""
    from compressai.zoo.image import _load_model

    torch.manual_seed(0)
    state = _load_model("bmshj2018-factorized", "mse", 1).state_dict()
    renamed = {}
    for key, value in state.items():
        for kind, singular in (("matrices", "matrix"), ("biases", "bias"), ("factors", "factor")):
            prefix = f"entropy_bottleneck.{kind}."
            if key.startswith(prefix):
                index = key[len(prefix):]
                key = (f"entropy_bottleneck._{singular}{index}" if style == "_matrix0"
                       else f"entropy_bottleneck._{kind}.{index}")
        renamed[key] = value
    assert any(k.startswith("entropy_bottleneck._") for k in renamed)
    path = tmp_path / "legacy.pth.tar"
    torch.save({"state_dict": renamed}, path)
    codec = create_codec("bmshj2018-factorized", checkpoint=str(path))
    image = np.ascontiguousarray(sample_pixels[:64, :64])
    assert codec.decode(codec.encode(image, 1)).shape == image.shape


def _nan_checkpoint(directory):
    from compressai.zoo.image import _load_model

    torch.manual_seed(0)
    state = dict(_load_model("bmshj2018-factorized", "mse", 1).state_dict())
    state["g_a.0.weight"] = torch.full_like(state["g_a.0.weight"], float("nan"))
    path = directory / "diverged.pth"
    torch.save(state, path)
    return path


def test_a_diverged_checkpoint_is_an_error_naming_the_tensor_in_seconds(tmp_path, checkpoints,
                                                                       photo_folder):
    """NaN weights sent CompressAI's rANS coder into an endless loop."""
    nan = _nan_checkpoint(tmp_path)
    done = run_cli("run", "--codecs", "bmshj2018-factorized", "--checkpoint", str(nan),
                   "--datasets", str(photo_folder), "--store", str(tmp_path / "s.sqlite"),
                   "--jobs", "1", timeout=120)
    assert "non-finite values in diverged.pth, tensor g_a.0.weight" in done.stderr, done.stderr
    done = run_cli("check", "bmshj2018-factorized", "--checkpoints", str(nan), "--baseline",
                   str(checkpoints["bmshj2018-factorized"]), "--datasets",
                   str(photo_folder), timeout=120)
    assert done.returncode == 2 and "g_a.0.weight" in done.stderr, done.stdout + done.stderr


def test_non_finite_latents_are_refused_before_the_coder(checkpoints, sample_pixels):
    """Finite weights can still overflow: what reaches the coder is checked, module named."""
    codec = create_codec("bmshj2018-factorized",
                         checkpoint=str(checkpoints["bmshj2018-factorized"]))
    net = codec.model(1)
    with torch.no_grad():
        net.g_a[0].weight.mul_(1e30)  # finite, but the analysis transform overflows to inf
    with pytest.raises(CheckpointError, match="non-finite values in the output of g_a"):
        codec.encode(np.ascontiguousarray(sample_pixels[:64, :64]), 1)


def test_the_checkpoint_file_name_changes_no_byte_of_the_bitstream(tmp_path, checkpoints,
                                                                   sample_pixels):
    """Same weights under another name: same bytes, and each decodes the other's."""
    image = np.ascontiguousarray(sample_pixels[:64, :64])
    source = checkpoints["bmshj2018-factorized"]
    streams = []
    for name in ("a.pth", "w" * 200 + ".pth"):
        (tmp_path / name).write_bytes(source.read_bytes())
        codec = create_codec("bmshj2018-factorized", checkpoint=str(tmp_path / name))
        streams.append((codec, codec.encode(image, 1)))
    (short, short_data), (long, long_data) = streams
    assert short.name != long.name and short_data == long_data
    assert np.array_equal(long.decode(short_data), short.decode(short_data))
    assert unpack(short_data).codec == "bmshj2018-factorized"


def test_crafted_headers_are_refused_before_the_native_decoder(checkpoints, sample_pixels):
    """These once segfaulted the decoder or decoded to an image of the wrong size."""
    from dataclasses import replace

    codec = create_codec("bmshj2018-hyperprior",
                         checkpoint=str(checkpoints["bmshj2018-hyperprior"]))
    stream = unpack(codec.encode(np.ascontiguousarray(sample_pixels[:64, :64]), 1))
    crafted = {
        "claims a 100000x100000 image": replace(stream, height=100000, width=100000),
        "claims a 0x0 image": replace(stream, height=0, width=0),
        "latent shape (600, 600) does not fit a 64x64 image": replace(stream, shape=(600, 600)),
        "empty entropy-coded string": replace(stream, strings=(b"",) * len(stream.strings)),
    }
    for message, bad in crafted.items():
        with pytest.raises(ValueError, match=re.escape(message)):
            codec.decode(pack(bad))
    assert codec.decode(pack(stream)).shape == (64, 64, 3)


def test_verify_and_check_refuse_to_check_nothing_or_a_bogus_device(tmp_path, checkpoints,
                                                                     photo_folder):
    from harness.verify import verify_quality

    ckpt = str(checkpoints["bmshj2018-factorized"])
    codec = create_codec("bmshj2018-factorized", checkpoint=ckpt)
    assert not verify_quality(codec, "bmshj2018-factorized", {"checkpoint": ckpt}, 1, []).ok
    cases = {
        ("verify", "bmshj2018-factorized", "--checkpoint", ckpt, "--images", "0"):
            "--images and --crop must be at least 1",
        ("verify", "bmshj2018-factorized", "--checkpoint", ckpt, "--device", "bogus"):
            "'bogus' (--device or $HARNESS_DEVICE) is not a torch device",
        ("check", "bmshj2018-factorized", "--checkpoints", ckpt, "--baseline", ckpt,
         "--datasets", str(photo_folder), "--device", "bogus"):
            "'bogus' (--device or $HARNESS_DEVICE) is not a torch device",
    }
    for args, message in cases.items():
        done = run_cli(*args, "--store", str(tmp_path / "s.sqlite")) if args[0] == "check" \
            else run_cli(*args)
        assert done.returncode == 2 and message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr


def test_golden_files_of_images_sharing_a_stem_are_kept_apart(tmp_path, sample_pixels):
    from harness.check import check_golden, write_golden

    codec = create_codec("jpeg")
    crops = [np.ascontiguousarray(sample_pixels[i:i + 32, :32]) for i in (0, 40, 80)]
    ids = ["a/x.png", "b/x.png", "x.jpg"]
    write_golden(codec, list(zip(ids, crops, strict=True)), 50, tmp_path)
    assert len(list(tmp_path.glob("*.bin"))) == len(list(tmp_path.glob("*.md5"))) == 3
    gate = check_golden(codec, tmp_path)
    assert gate.passed and "3 golden bitstreams" in gate.message, gate


def test_a_learned_codec_leaves_autograd_on_for_its_user():
    """Loading and running a network must not switch off autograd process-wide: in a
    notebook, training after `harness.benchmark` failed with "element 0 of tensors does
    not require grad"."""
    import torch

    from harness.registry import new_codec

    codec = new_codec("bmshj2018-factorized")
    codec.use_random_weights(1)
    codec.decode(codec.encode(np.zeros((64, 64, 3), np.uint8), 1))
    assert torch.is_grad_enabled()
    assert not any(p.requires_grad for p in codec.model(1).parameters())


class _CountInitialisers(torch.overrides.TorchFunctionMode):
    """Counts the calls of torch.nn.init's functions that reach it."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__module__", "") == "torch.nn.init":
            self.calls += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("architecture", ["mbt2018-mean", "stf", "tcm", "tic",
                                          "entroformer"])
def test_loading_builds_the_network_without_random_initialisation(architecture, tmp_path):
    """The strict load sets every value, so the build skips nn.init (STF: 3 s of a 3.5 s
    load); the loaded network equals one built with its initialisation and loaded."""
    from harness.checkpoints import load_strict
    from harness.registry import new_codec

    torch.manual_seed(0)
    source = new_codec(architecture).random_network(1)
    path = tmp_path / "random.pth"
    torch.save(source.state_dict(), path)
    codec = create_codec(architecture, checkpoint=str(path))
    with _CountInitialisers() as counted:
        loaded = codec.model(1)
    assert counted.calls == 0
    reference = codec.build(read_state_dict(path), 1)  # initialised, then loaded
    load_strict(reference, read_state_dict(path), str(path))
    reference.update(force=False)
    expected = {**dict(reference.named_parameters()), **dict(reference.named_buffers())}
    got = {**dict(loaded.named_parameters()), **dict(loaded.named_buffers())}
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_a_lenient_load_keeps_the_initialisation_of_what_the_file_lacks():
    codec = create_codec("shen2023", lenient=True)
    assert not codec.loads_strictly
    assert create_codec("shen2023").loads_strictly


def test_a_run_with_nothing_left_to_measure_loads_no_network_nor_torch(tmp_path, checkpoints):
    """Weights are loaded (and torch imported) for the qualities with work only: a run
    whose rows are all stored took 12.8 s on a mixed plan of six models, now 0.7 s."""
    args = ("run", "--codecs", "bmshj2018-factorized", "--checkpoint",
            str(checkpoints["bmshj2018-factorized"]), "--datasets", "sample", "--store",
            str(tmp_path / "s.sqlite"), "--jobs", "1", "--no-progress", "--no-report")
    first = run_cli(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = run_cli(*args, cwd=tmp_path, env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert again.returncode == 0, again.stderr
    assert "0 measured" in again.stdout and "4 reused" in again.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in again.stderr.splitlines()
                if line.startswith("import time:")}
    assert "harness.runner" in imported  # the listing works
    assert "torch" not in imported and "compressai" not in imported


def test_a_checkpoint_that_does_not_fit_is_each_tasks_error_read_once(tmp_path, checkpoints,
                                                                     photo_folder):
    """The workers load the weights (the parent only fetches and verifies them): a file
    of another layout is an error row per task with the diff, loaded once per worker."""
    done = run_cli("run", "--codecs", "mbt2018", "--checkpoint",
                   str(checkpoints["bmshj2018-hyperprior"]), "--datasets", str(photo_folder),
                   "--store", str(tmp_path / "s.sqlite"), "--jobs", "1", "--no-progress",
                   "--no-report")
    assert done.returncode == 1
    assert re.search(r"error: 2 x .*does not fit JointAutoregressiveHierarchicalPriors",
                     done.stderr), done.stderr
    assert "Traceback" not in done.stderr
    codec = create_codec("mbt2018", checkpoint=str(checkpoints["bmshj2018-hyperprior"]))
    loads = []
    original = codec._load
    codec._load = lambda quality: loads.append(quality) or original(quality)
    errors = []
    for _ in range(2):
        with pytest.raises(CheckpointError) as raised:
            codec.model(1)
        errors.append(raised.value)
    assert loads == [1] and errors[0] is errors[1]


def test_a_file_mended_after_a_failed_load_is_read_again(tmp_path, checkpoints):
    """The memo of a failed load is the file's: a long-lived worker reads a replaced
    file again instead of repeating the old error."""
    path = tmp_path / "mine.pth.tar"
    path.write_bytes(checkpoints["bmshj2018-hyperprior"].read_bytes())  # not an mbt2018
    codec = create_codec("mbt2018", checkpoint=str(path))
    with pytest.raises(CheckpointError):
        codec.model(1)
    torch.manual_seed(0)
    from compressai.zoo.image import _load_model

    torch.save(_load_model("mbt2018", "mse", 1).state_dict(), path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)  # the right file, another size
    assert codec.model(1) is not None


def test_a_file_is_hashed_once_while_it_stays_the_same_file(tmp_path):
    """A run's parent verifies the weights and its workers take its digests
    (remember_digests) instead of hashing again; any change to the file is a new state,
    hashed anew."""
    import hashlib
    import os

    path = tmp_path / "weights.pth"
    path.write_bytes(b"a" * 1000)
    assert sha256_of(path) == hashlib.sha256(b"a" * 1000).hexdigest()
    (state,) = [s for s in known_digests() if s[0] == os.path.realpath(path)]
    remember_digests({state: "told"})  # as a worker is told by its parent
    assert sha256_of(path) == "told"  # not hashed again
    path.write_bytes(b"b" * 1000)  # same size, same path: written, so another state
    assert sha256_of(path) == hashlib.sha256(b"b" * 1000).hexdigest()
    (tmp_path / "other.pth").write_bytes(b"a" * 1000)
    os.replace(tmp_path / "other.pth", path)  # replaced by another file (another inode)
    assert sha256_of(path) == hashlib.sha256(b"a" * 1000).hexdigest()


def test_non_finite_values_are_found_and_large_finite_ones_are_not():
    """require_finite's fast path (a finite sum) and its exact check (the sum overflowed)."""
    from harness.codecs.learned import NonFiniteValues, require_finite

    for bad, count in ((float("nan"), 1), (float("inf"), 1), (-float("inf"), 1)):
        values = torch.zeros(1000)
        values[17] = bad
        with pytest.raises(NonFiniteValues, match=f"{count} of 1000 values"):
            require_finite(values, "w")
    both = torch.tensor([float("inf"), -float("inf"), 1.0])  # their sum is NaN
    with pytest.raises(NonFiniteValues, match="2 of 3"):
        require_finite(both, "w")
    require_finite(torch.full((10,), 60000.0, dtype=torch.float16), "w")  # sum overflows
    require_finite(torch.full((4,), 1e308, dtype=torch.float64), "w")
    require_finite(torch.tensor([2**62, 2**62]), "w")  # integers are not checked


def test_a_mapped_checkpoint_reads_as_a_copied_one_and_the_network_keeps_its_own(tmp_path,
                                                                                checkpoints):
    """torch.save archives are memory-mapped; legacy pickles and re-compressed archives
    are read whole (the decompression-bomb test reads one); a network loaded from a
    mapped file holds copies, so rewriting the file afterwards changes nothing in it."""
    from harness.checkpoints import check_checkpoint_format

    source = checkpoints["bmshj2018-hyperprior"]
    legacy = tmp_path / "legacy.pth"
    torch.save(torch.load(source, weights_only=True), legacy,
               _use_new_zipfile_serialization=False)
    mapped = tmp_path / "mapped.pth"
    mapped.write_bytes(source.read_bytes())
    assert check_checkpoint_format(mapped) and not check_checkpoint_format(legacy)
    one, other = read_state_dict(mapped), read_state_dict(legacy)
    assert one.keys() == other.keys()
    assert all(torch.equal(one[key], other[key]) for key in one)
    del one, other

    codec = create_codec("bmshj2018-hyperprior", checkpoint=str(mapped))
    weights = {k: v.clone() for k, v in codec.model(1).state_dict().items()}
    mapped.write_bytes(b"\0" * mapped.stat().st_size)  # in place: same inode, zeros
    assert all(torch.equal(v, codec.model(1).state_dict()[k]) for k, v in weights.items())
    pixels = np.zeros((64, 64, 3), np.uint8)
    assert codec.decode(codec.encode(pixels, 1)).shape == pixels.shape


def test_a_warm_up_runs_once_per_network_layout_in_a_process(monkeypatch):
    """The next rate point of a layout already run here is loaded but not run again: a
    worker switching models pays no second warm-up; a wider network is warmed."""
    from harness.codecs import learned

    monkeypatch.setattr(learned, "_LAYOUTS_RUN", set())
    codec = create_codec("bmshj2018-hyperprior")
    for quality in (1, 2, 6):
        codec.use_random_weights(quality)
    runs, encode = [], codec.encode
    monkeypatch.setattr(codec, "encode",
                        lambda image, quality: runs.append(quality) or encode(image, quality))
    for quality in (1, 2, 6, 1):
        codec.warm_up(quality)
    assert runs == [1, 6]  # q2 has q1's layout (N=128, M=192); q6's is wider (192, 320)
    codec.release_models()
    codec.use_random_weights(2)
    codec.warm_up(2)  # loaded again: still a layout that has run
    assert runs == [1, 6] and 2.0 in codec._warm
