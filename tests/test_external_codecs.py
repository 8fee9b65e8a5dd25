"""External-binary codecs: real encodes and decodes of a real photo in the codec
containers, their failure paths, and what `availability()` says without them.

Container tests skip without a Docker engine, except under CI=true (see
tests/test_containers.py). BPG and VTM tests skip while their images are not built
(their sources are downloaded from hosts outside the package registries).
"""

import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from harness import colour, containers, metrics
from harness.codecs import external
from harness.codecs.external import ExternalCodecError
from harness.registry import create_codec
from tests.test_containers import debian_image, require_docker  # noqa: F401 (fixture)

DEBIAN_CODECS = ["x265", "avif", "jpegxl", "webp-cli", "jpeg2000-cli"]
ALL_CODECS = ["bpg", "vtm", *DEBIAN_CODECS]
CLASSES = {cls.name: cls for cls in external.EXTERNAL_CODECS}


@pytest.fixture(scope="module")
def photo(sample_pixels) -> np.ndarray:
    """256 x 384 crop of a real photograph."""
    return np.ascontiguousarray(sample_pixels[72:328, 108:492])


def _sweep(codec) -> list:
    """Three quality points from the codec's sweep: low, middle and high rate."""
    points = list(codec.qualities)
    return [points[1], points[len(points) // 2], points[-2]]


def _check_rd(codec, image, qualities, low=20.0, high=50.0):
    rows = []
    for quality in qualities:
        bitstream = codec.encode(image, quality)
        assert isinstance(bitstream, bytes) and len(bitstream) > 0
        decoded = codec.decode(bitstream)
        assert decoded.dtype == np.uint8 and decoded.shape == image.shape
        rows.append((len(bitstream), metrics.psnr(image, decoded)))
    sizes, psnrs = zip(*rows)
    assert list(sizes) == sorted(sizes), f"{codec.name}: bytes not increasing: {rows}"
    assert list(psnrs) == sorted(psnrs), f"{codec.name}: PSNR not increasing: {rows}"
    assert all(low < p < high for p in psnrs), f"{codec.name}: implausible PSNR: {rows}"
    return rows


# --- registry and pure helpers ------------------------------------------------------------

@pytest.mark.parametrize("name", ALL_CODECS)
def test_registered_with_sweeps(name):
    codec = create_codec(name)
    assert isinstance(codec, CLASSES[name]) and codec.name == name
    assert len(codec.qualities) >= 6 and codec.description and codec.quality_label
    for quality in codec.qualities:
        assert codec.check_quality(quality) == quality
    with pytest.raises(ValueError):
        codec.check_quality(-1)


def test_qp_sweeps_follow_the_papers():
    for name in ("bpg", "vtm", "x265"):
        assert tuple(CLASSES[name].qualities) == (47, 42, 37, 32, 27, 22)


def test_mode_is_validated(monkeypatch):
    monkeypatch.setenv(external.MODE_ENV, "sometimes")
    with pytest.raises(ValueError, match="native, docker"):
        external.WebPCLI()
    monkeypatch.setenv(external.MODE_ENV, "docker")
    assert external.WebPCLI().mode == "docker"
    assert external.WebPCLI(mode="native").mode == "native"


def test_y4m_reader():
    frame = np.random.default_rng(3).integers(0, 256, (3, 5, 3), dtype=np.uint8)
    data = (b"YUV4MPEG2 W5 H3 F1:1 Ip A1:1 C444 XYSCSS=444\nFRAME\n"
            + colour.to_planar(frame))
    assert np.array_equal(external.read_y4m_444(data), frame)
    with pytest.raises(ValueError, match="4:4:4"):
        external.read_y4m_444(data.replace(b"C444", b"C420jpeg"))
    with pytest.raises(ValueError):
        external.read_y4m_444(b"not y4m")


class _BitWriter:
    def __init__(self):
        self.bits = []

    def u(self, value, count):
        self.bits += [(value >> (count - 1 - i)) & 1 for i in range(count)]

    def ue(self, value):
        code = value + 1
        self.u(0, code.bit_length() - 1)
        self.u(code, code.bit_length())

    def align(self):
        while len(self.bits) % 8:
            self.bits.append(0)

    def bytes(self):
        self.bits.append(1)  # rbsp_stop_one_bit
        self.align()
        return bytes(int("".join(map(str, self.bits[i:i + 8])), 2)
                     for i in range(0, len(self.bits), 8))


def _vvc_sps(width, height, window, chroma=3, gci=False, sublayers=1):
    w = _BitWriter()
    w.u(0, 4), w.u(0, 4), w.u(sublayers - 1, 3), w.u(chroma, 2), w.u(2, 2), w.u(1, 1)
    w.u(1, 7), w.u(0, 1), w.u(51, 8), w.u(1, 1), w.u(0, 1)  # profile_tier_level
    w.u(int(gci), 1)
    if gci:
        w.u(0, 71), w.u(3, 8), w.u(0, 3)
    w.align()
    for _ in range(sublayers - 1):
        w.u(1, 1)
    w.align()
    for _ in range(sublayers - 1):
        w.u(51, 8)
    w.u(1, 8), w.u(0x12345678, 32)  # one sub-profile
    w.u(0, 1), w.u(0, 1)  # gdr, rpr
    w.ue(width), w.ue(height)
    w.u(int(bool(window)), 1)
    for offset in window or ():
        w.ue(offset)
    payload = w.bytes()
    # emulation prevention, as an encoder writes it
    escaped, zeros = bytearray(), 0
    for byte in payload:
        if zeros >= 2 and byte <= 3:
            escaped.append(3)
            zeros = 0
        escaped.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    header = bytes([0x00, (15 << 3) | 1])  # SPS_NUT, temporal id 0
    return b"\x00\x00\x00\x01" + header + bytes(escaped)


@pytest.mark.parametrize("gci,sublayers", [(False, 1), (True, 1), (True, 3)])
def test_vvc_picture_size_from_the_sps(gci, sublayers):
    vps = b"\x00\x00\x01\x00\x71\x01\x02"  # another NAL unit first
    stream = vps + _vvc_sps(392, 256, (0, 9, 0, 5), gci=gci, sublayers=sublayers) \
        + b"\x00\x00\x01\x00\x41\xff"
    assert external.vvc_picture_size(stream) == (383, 251, 3)
    assert external.vvc_picture_size(_vvc_sps(64, 48, None, chroma=1)) == (64, 48, 1)
    assert external.vvc_picture_size(_vvc_sps(64, 48, (1, 1, 2, 0), chroma=1)) == (60, 44, 1)
    with pytest.raises(ValueError, match="no sequence parameter set"):
        external.vvc_picture_size(b"\x00\x00\x01\x00\x41\xff")


# --- native mode, with stand-in binaries (no engine needed) ------------------------------

@pytest.fixture
def fake_bin(tmp_path, monkeypatch):
    """A PATH holding only stand-ins for cwebp/dwebp written by each test."""
    folder = tmp_path / "bin"
    folder.mkdir()

    def make(name, script):
        path = folder / name
        path.write_text("#!/bin/sh\n" + script)
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    monkeypatch.setenv("PATH", f"{folder}:/usr/bin:/bin")
    return make


def test_native_crash_is_a_clear_error(fake_bin, photo):
    fake_bin("cwebp", "echo 'Error! Could not process file' >&2; exit 3\n")
    fake_bin("dwebp", "exit 0\n")
    codec = external.WebPCLI()
    assert codec.mode == "native" and codec.availability().ok
    with pytest.raises(ExternalCodecError) as info:
        codec.encode(photo, 75)
    message = str(info.value)
    assert "webp-cli encode" in message and "exit status 3" in message
    assert "Could not process file" in message


def test_native_missing_output_is_a_clear_error(fake_bin, photo):
    fake_bin("cwebp", "exit 0\n")
    fake_bin("dwebp", "exit 0\n")
    with pytest.raises(ExternalCodecError, match="wrote no output file"):
        external.WebPCLI().encode(photo, 75)


def test_native_timeout_is_a_clear_error(fake_bin, photo):
    fake_bin("cwebp", "exec sleep 30\n")
    fake_bin("dwebp", "exit 0\n")
    with pytest.raises(ExternalCodecError, match="timed out after 1 s"):
        external.WebPCLI(timeout=1).encode(photo, 75)


def test_native_version_is_in_the_fingerprint_and_cached(fake_bin, tmp_path):
    counter = tmp_path / "calls"
    fake_bin("cwebp", f"echo x >> {counter}; echo 1.2.4\n")
    fake_bin("dwebp", "echo 1.2.4\n")
    codec = external.WebPCLI()
    first = codec.fingerprint()
    assert codec.fingerprint() == first and counter.read_text().count("x") == 1
    assert "cwebp 1.2.4" in codec.version()
    fake_bin("cwebp", "echo 1.3.0\n")  # another binary (another path would do too)
    external._versions.clear()
    assert codec.fingerprint() != first



def test_a_version_lookup_is_reused_by_later_processes_until_a_binary_changes(
        fake_bin, tmp_path, monkeypatch):
    """Each `harness run` fingerprints its codecs; the lookup runs the binaries (or starts a
    container), so it is recorded in the data dir, keyed by the files' size, mtime and
    inode (or the image's id), and a later process reuses it while they are unchanged."""
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path / "data"))
    counter = tmp_path / "calls"
    fake_bin("cwebp", f"echo x >> {counter}; echo 1.2.4\n")
    fake_bin("dwebp", "echo 1.2.4\n")
    fingerprint = [sys.executable, "-c", "from harness.codecs.external import WebPCLI;"
                   " print(WebPCLI(mode='native').version())"]

    def lookups():
        return counter.read_text().count("x") if counter.exists() else 0

    first = subprocess.run(fingerprint, capture_output=True, text=True, check=True).stdout
    assert "cwebp 1.2.4" in first and lookups() == 1
    again = subprocess.run(fingerprint, capture_output=True, text=True, check=True).stdout
    assert again == first and lookups() == 1  # the second process ran no binary
    fake_bin("cwebp", f"echo x >> {counter}; echo 1.3.0\n")  # upgraded in place
    upgraded = subprocess.run(fingerprint, capture_output=True, text=True, check=True).stdout
    assert "cwebp 1.3.0" in upgraded and lookups() == 2
    (tmp_path / "data" / "versions.json").write_text("{not json")  # a damaged record
    damaged = subprocess.run(fingerprint, capture_output=True, text=True, check=True).stdout
    assert damaged == upgraded and lookups() == 3

def test_version_text_drops_machine_details():
    text = ("x265 [info]: HEVC encoder version 3.5+1\n"
            "x265 [info]: using cpu capabilities: MMX2 SSE2Fast AVX2\n"
            "cjxl v0.7.0 [AVX3,AVX2,SSE4,SSSE3,Unknown]\nlibyuv : available (1857)\n"
            "VVCSoftware: VTM Encoder Version 12.0 [Linux][GCC 12.2.0][64 bit] [SIMD=AVX2] \n")
    assert external._clean_version(text) == (
        "x265 [info]: HEVC encoder version 3.5+1\ncjxl v0.7.0\n"
        "VVCSoftware: VTM Encoder Version 12.0 [Linux][GCC 12.2.0][64 bit]")


# --- availability without binaries or Docker ---------------------------------------------

@pytest.mark.parametrize("name", ALL_CODECS)
def test_availability_without_docker(name, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # none of the binaries

    def no_engine(timeout=60):
        raise containers.EngineUnavailable("the Docker engine is not reachable at "
                                           "unix:///var/run/docker.sock (test)")

    monkeypatch.setattr(containers.engine, "docker_client", no_engine)
    codec = CLASSES[name]()
    assert codec.mode == "docker"
    available = codec.availability()
    assert not available.ok
    assert "not on PATH" in available.reason and "Docker engine" in available.reason
    assert codec.binaries[0] in available.reason


@pytest.mark.parametrize("name", ALL_CODECS)
def test_availability_names_the_build_command(name, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(containers, "engine_available", lambda: (True, ""))
    monkeypatch.setattr(containers, "find_image", lambda recipe, client=None: None)
    codec = CLASSES[name]()
    available = codec.availability()
    assert not available.ok
    assert f"harness containers build {codec.recipe}" in available.reason


def test_forced_native_mode_without_binaries(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    available = external.X265(mode="native").availability()
    assert not available.ok and "apt-get install x265 ffmpeg" in available.reason


# --- real encodes in the codec containers ------------------------------------------------

@pytest.mark.parametrize("name", DEBIAN_CODECS)
def test_real_round_trips_in_the_debian_image(name, debian_image, photo):  # noqa: F811
    codec = CLASSES[name](mode="docker")
    assert codec.availability().ok
    assert codec.image() == debian_image
    rows = _check_rd(codec, photo, _sweep(codec))
    bpp = [8 * size / (photo.shape[0] * photo.shape[1]) for size, _ in rows]
    assert 0.02 < bpp[0] and bpp[-1] < 8
    version = codec.version()
    assert version and codec.fingerprint() == codec.fingerprint()


def test_x265_odd_sizes_and_colour_path(debian_image, sample_pixels):  # noqa: F811
    codec = external.X265(mode="docker")
    image = np.ascontiguousarray(sample_pixels[:67, :101])
    decoded = codec.decode(codec.encode(image, 22))
    assert decoded.shape == image.shape
    assert metrics.psnr(image, decoded) > 38
    bitstream = codec.encode(image, 32)
    assert b"x265 (build" not in bitstream  # --no-info: no info SEI


@pytest.mark.parametrize("name", DEBIAN_CODECS)
def test_corrupt_bitstream_is_a_clear_error(name, debian_image):  # noqa: F811
    codec = CLASSES[name](mode="docker")
    with pytest.raises(ExternalCodecError) as info:
        codec.decode(b"\x00\x00\x01\x26\x01" + bytes(range(256)) * 4)
    message = str(info.value)
    assert message.startswith(f"{name} decode:")
    assert "exit status" in message or "no output file" in message or "4:4:4" in message


def test_container_timeout_and_missing_output(debian_image):  # noqa: F811
    codec = external.WebPCLI(mode="docker", timeout=1)
    with codec._call("encode") as call:
        with pytest.raises(ExternalCodecError, match="timed out after 1 s.*docker"):
            call.run(["sleep", "20"])
        call.run(["true"])
        with pytest.raises(ExternalCodecError, match="wrote no output file"):
            call.read(call.name("out.webp"))


def test_exchange_folder_is_emptied_after_each_call(debian_image, photo):  # noqa: F811
    codec = external.JPEG2000CLI(mode="docker")
    codec.decode(codec.encode(photo, 48))
    worker = containers.get_worker(codec.image())
    assert list(worker.host_dir.iterdir()) == []


# --- BPG and VTM: only where their images were built -------------------------------------

def _built_codec(name):
    require_docker()
    codec = CLASSES[name](mode="docker")
    if containers.find_image(codec.recipe) is None:
        pytest.skip(f"the {name} image is not built here (`harness containers build "
                    f"{codec.recipe}`; it needs the upstream source or --source PATH)")
    return codec


def test_bpg_round_trip(photo):
    codec = _built_codec("bpg")
    _check_rd(codec, photo, [42, 32, 22])
    assert codec.encode(photo, 32)[:4] == b"BPG\xfb"
    assert "0.9.8" in codec.version()


@pytest.mark.slow
def test_vtm_round_trip(sample_pixels):
    codec = _built_codec("vtm")
    image = np.ascontiguousarray(sample_pixels[100:165, 200:299])  # 65 x 99: padded + cropped
    rows = _check_rd(codec, image, [42, 27])
    bitstream = codec.encode(image, 37)
    assert external.vvc_picture_size(bitstream) == (99, 65, 3)
    assert rows[-1][1] > 35
    assert os.path.basename(codec.cfg_path()) == "encoder_intra_vtm.cfg"
