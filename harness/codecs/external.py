"""Classical codecs run as external binaries, natively or in a codec container.

| name | binaries (container recipe) | colour path | quality axis |
|---|---|---|---|
| ``bpg`` | bpgenc, bpgdec (``bpg``) | bpgenc's own BT.601 full range | QP 47..22 |
| ``vtm`` | EncoderAppStatic, DecoderAppStatic (``vtm``) | harness BT.709 full range | QP 47..22 |
| ``x265`` | x265, ffmpeg to decode (``debian``) | harness BT.601 full range | QP 47..22 |
| ``avif`` | avifenc, avifdec (``debian``) | libavif, BT.601 full range | quantizer 56..8 |
| ``jpegxl`` | cjxl, djxl (``debian``) | XYB inside libjxl | distance 10..0.5 |
| ``webp-cli`` | cwebp, dwebp (``debian``) | libwebp, 4:2:0 | quality 10..95 |
| ``jpeg2000-cli`` | opj_compress, opj_decompress (``debian``) | ICT in OpenJPEG | ratio 192..6 |

Settings, as the learned-compression literature uses these anchors:

- ``bpg``: BPG444 as in CompressAI and papers: ``bpgenc -f 444 -e x265 -c ycbcr -b 8
  -m 8 -q QP`` (4:4:4, x265 backend, BT.601 full range, 8 bits, the default
  compression level). QPs 22, 27, ..., 47 (papers sweep 22..47 or, like CompressAI,
  12..47 in steps of 5).
- ``vtm``: VVC all-intra, ``cfg/encoder_intra_vtm.cfg`` of the built VTM (VTM-12.0 by
  default), 4:4:4 8-bit input (``--InputChromaFormat=444 --InputBitDepth=8
  --ConformanceWindowMode=1``, internal bit depth 10 from the cfg), as CompressAI's
  benchmark runs it; QPs 22..47 as for BPG. Single-threaded and slow (about a minute
  per 768x512 image and QP on one core).
- ``x265``: HEVC intra 4:4:4 with the x265 CLI on raw YUV: ``--preset medium --tune psnr
  --qp QP --keyint 1 --no-info`` (no 2 kB info SEI), one thread. Bitstream: raw Annex-B.
- ``avif``: ``avifenc -c aom -s 6 -y 444 -d 8 -r full --cicp 1/13/6 --min Q --max Q``
  (4:4:4, full range, BT.601 matrix; libavif 0.11 has no ``-q``).
- ``jpegxl``: ``cjxl -d D -e 7`` (the default effort); it codes in XYB and is tuned for
  perceptual quality, so RGB-PSNR ranks it low.
- ``webp-cli``: ``cwebp -q Q -m 6`` (4:2:0, the slowest and best method).
- ``jpeg2000-cli``: ``opj_compress -r R -I`` (9/7 irreversible wavelet, ICT; without
  ``-I`` OpenJPEG uses the reversible 5/3 wavelet and RCT), raw J2K codestream.

Every byte the decoder needs is counted: raw Annex-B streams for x265 and VTM (the
decoder reads the picture size from the parameter sets), whole files for the others.

Mode: native when every binary is on PATH, else the codec's container (see
:mod:`harness.containers`). ``HARNESS_CODEC_MODE=native|docker`` (or the constructor's
``mode``) forces one. ``HARNESS_IMAGE_<RECIPE>`` (e.g. ``HARNESS_IMAGE_VTM``) picks
another image than the recipe's current one. ``HARNESS_CODEC_TIMEOUT`` (seconds)
overrides the per-call time limit (default 600 s, VTM 7200 s). Natively, VTM's cfg is
found through ``HARNESS_VTM_CFG``, else ``../cfg/encoder_intra_vtm.cfg`` next to the
binary.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import io
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from harness import colour
from harness.codec import (
    Availability,
    Codec,
    Quality,
    check_image,
    fingerprint_of,
    integer_quality,
)
from harness.errors import CodecUnavailable

MODE_ENV = "HARNESS_CODEC_MODE"
TIMEOUT_ENV = "HARNESS_CODEC_TIMEOUT"
VTM_CFG_ENV = "HARNESS_VTM_CFG"
MODES = ("auto", "native", "docker")


class ExternalCodecError(RuntimeError):
    """An external codec call failed: crash, timeout, or a missing or empty output file."""


# --- where commands run -----------------------------------------------------------------

class _NativeRunner:
    """Runs binaries from PATH in a per-process exchange folder."""

    mode = "native"

    def __init__(self):
        self.host_dir = Path(tempfile.mkdtemp(prefix="lic-harness-native-"))
        atexit.register(shutil.rmtree, self.host_dir, True)

    def run(self, argv: Sequence[str], timeout: float):
        from harness.containers import CommandResult

        started = time.perf_counter()
        try:
            done = subprocess.run(list(argv), cwd=self.host_dir, capture_output=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            return CommandResult(list(argv), -9, exc.stdout or b"", exc.stderr or b"",
                                 time.perf_counter() - started, timed_out=True)
        except OSError as exc:
            return CommandResult(list(argv), 127, b"", str(exc).encode(),
                                 time.perf_counter() - started)
        return CommandResult(list(argv), done.returncode, done.stdout, done.stderr,
                             time.perf_counter() - started)


_native_runners: dict[int, _NativeRunner] = {}
_runner_lock = threading.Lock()


def _native_runner() -> _NativeRunner:
    with _runner_lock:
        runner = _native_runners.get(os.getpid())
        if runner is None:
            runner = _native_runners[os.getpid()] = _NativeRunner()
        return runner


_call_numbers = itertools.count()


class _Call:
    """The files of one codec call in the runner's exchange folder, removed afterwards."""

    def __init__(self, codec: ExternalCodec, what: str):
        self.codec, self.what = codec, what
        self.runner = codec._runner()
        self.prefix = f"{os.getpid()}-{next(_call_numbers)}-"
        self.names: list[str] = []

    def name(self, suffix: str) -> str:
        name = self.prefix + suffix
        self.names.append(name)
        return name

    def write(self, suffix: str, data: bytes) -> str:
        name = self.name(suffix)
        path = self.runner.host_dir / name
        path.write_bytes(data)
        path.chmod(0o644)  # readable by the container's user whatever the umask
        return name

    def read(self, name: str) -> bytes:
        path = self.runner.host_dir / name
        if not path.is_file() or path.stat().st_size == 0:
            raise ExternalCodecError(
                f"{self.codec.name} {self.what}: the codec wrote no output file "
                f"({'empty' if path.is_file() else 'missing'} {name.removeprefix(self.prefix)})")
        return path.read_bytes()

    def run(self, argv: Sequence[str]):
        result = self.runner.run(argv, self.codec.timeout)
        if result.timed_out:
            raise ExternalCodecError(
                f"{self.codec.name} {self.what}: {argv[0]} timed out after "
                f"{self.codec.timeout:g} s ({self.runner.mode}; {TIMEOUT_ENV} raises the limit)")
        if result.returncode != 0:
            killed = (" (killed: out of memory? HARNESS_CONTAINER_MEMORY raises the limit)"
                      if result.returncode == 137 and self.runner.mode == "docker" else "")
            raise ExternalCodecError(
                f"{self.codec.name} {self.what}: {argv[0]} failed with exit status "
                f"{result.returncode}{killed} ({self.runner.mode}): "
                f"{result.tail() or 'no message'}")
        return result

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        for name in self.names:
            try:
                (self.runner.host_dir / name).unlink()
            except OSError:
                pass


# --- file formats ---------------------------------------------------------------------

def _png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image, "RGB").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _ppm_bytes(image: np.ndarray) -> bytes:
    height, width = image.shape[:2]
    return f"P6\n{width} {height}\n255\n".encode() + np.ascontiguousarray(image).tobytes()


def _read_image(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        if im.mode != "RGB":
            im = im.convert("RGB")
        return np.asarray(im)


def read_y4m_444(data: bytes) -> np.ndarray:
    """The first frame of an 8-bit 4:4:4 YUV4MPEG2 stream as H x W x 3 (Y', Cb, Cr)."""
    header_end = data.find(b"\n")
    if not data.startswith(b"YUV4MPEG2 ") or header_end < 0:
        raise ValueError("not a YUV4MPEG2 stream")
    fields = data[:header_end].split()[1:]
    params = {f[:1]: f[1:] for f in fields}
    width, height = int(params[b"W"]), int(params[b"H"])
    chroma = params.get(b"C", b"420jpeg")
    if not chroma.startswith(b"444") or chroma.startswith(b"444p"):
        raise ValueError(f"expected 8-bit 4:4:4 frames, the stream is C{chroma.decode()}")
    frame_end = data.find(b"\n", header_end + 1)
    if not data[header_end + 1:].startswith(b"FRAME") or frame_end < 0:
        raise ValueError("YUV4MPEG2 stream without a frame")
    size = 3 * width * height
    return colour.from_planar(data[frame_end + 1:frame_end + 1 + size], height, width)


class _BitReader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def bit(self) -> int:
        byte = self.pos >> 3
        if byte >= len(self.data):
            raise ValueError("truncated parameter set")
        value = (self.data[byte] >> (7 - (self.pos & 7))) & 1
        self.pos += 1
        return value

    def bits(self, count: int) -> int:
        value = 0
        for _ in range(count):
            value = (value << 1) | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad exp-Golomb code")
        return (1 << zeros) - 1 + self.bits(zeros)

    def align(self) -> None:
        self.pos = (self.pos + 7) & ~7


def _nal_units(stream: bytes):
    """Annex-B NAL unit payloads (start codes and trailing zero bytes removed)."""
    starts = []
    i = stream.find(b"\x00\x00\x01")
    while i >= 0:
        starts.append(i + 3)
        i = stream.find(b"\x00\x00\x01", i + 3)
    for start, following in zip(starts, [*starts[1:], len(stream) + 3]):
        yield stream[start:following - 3].rstrip(b"\x00")


def _unescape(payload: bytes) -> bytes:
    return payload.replace(b"\x00\x00\x03", b"\x00\x00")


def vvc_picture_size(stream: bytes) -> tuple[int, int, int]:
    """(width, height, chroma_format_idc) of a VVC stream, after the conformance window.

    Parses the first sequence parameter set (H.266 7.3.2.4) as far as the window.
    """
    for nal in _nal_units(stream):
        if len(nal) < 3 or (nal[1] >> 3) != 15:  # nal_unit_type 15: SPS_NUT
            continue
        r = _BitReader(_unescape(nal[2:]))
        r.bits(4)  # sps_seq_parameter_set_id
        r.bits(4)  # sps_video_parameter_set_id
        max_sublayers_minus1 = r.bits(3)
        chroma_format_idc = r.bits(2)
        r.bits(2)  # sps_log2_ctu_size_minus5
        if r.bit():  # sps_ptl_dpb_hrd_params_present_flag: profile_tier_level(1, ...)
            r.bits(7 + 1 + 8 + 1 + 1)  # profile, tier, level, frame-only, multilayer
            if r.bit():  # gci_present_flag: general_constraints_info()
                r.bits(71)
                r.bits(r.bits(8))  # gci_num_reserved_bits, then those bits
            r.align()
            present = [r.bit() for _ in range(max_sublayers_minus1)]
            r.align()
            for flag in present:
                if flag:
                    r.bits(8)
            r.bits(32 * r.bits(8))  # ptl_num_sub_profiles, general_sub_profile_idc
        r.bit()  # sps_gdr_enabled_flag
        if r.bit():  # sps_ref_pic_resampling_enabled_flag
            r.bit()  # sps_res_change_in_clvs_allowed_flag
        width, height = r.ue(), r.ue()
        if r.bit():  # sps_conformance_window_flag
            left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
            sub_w = 2 if chroma_format_idc in (1, 2) else 1
            sub_h = 2 if chroma_format_idc == 1 else 1
            width -= sub_w * (left + right)
            height -= sub_h * (top + bottom)
        return width, height, chroma_format_idc
    raise ValueError("no sequence parameter set in the stream (not a VVC bitstream)")


# --- the adapters ------------------------------------------------------------------------

def _clean_version(text: str) -> str:
    """Version output without what depends on the machine (CPU features, timings)."""
    keep = []
    for line in text.splitlines():
        line = line.strip()
        if not line or "cpu capabilities" in line or line.startswith("libyuv"):
            continue
        keep.append(re.sub(r"\s*\[[^\]]*(AVX|SSE|SIMD)[^\]]*\]", "", line).strip())
    return "\n".join(keep)


_versions: dict[tuple[str, ...], str] = {}
_RECORDED_VERSIONS = "versions.json"  # in the data dir: lookups of earlier processes
_MAX_RECORDED = 256


def _versions_file() -> Path:
    from harness.datasets import default_data_dir

    return default_data_dir() / _RECORDED_VERSIONS


def _recorded_versions() -> dict[str, str]:
    try:
        recorded = json.loads(_versions_file().read_text())
    except (OSError, ValueError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def _record_version(key: str, version: str) -> None:
    """Keep a version lookup for later processes (a lost write only costs a lookup)."""
    from harness.files import write_atomically

    recorded = _recorded_versions()
    recorded.pop(key, None)
    recorded[key] = version
    with contextlib.suppress(OSError):
        write_atomically(_versions_file(), json.dumps(dict(list(recorded.items())[-_MAX_RECORDED:]),
                                                      indent=0))


class ExternalCodec(Codec):
    """A codec run as external binaries: natively if on PATH, else in its container."""

    recipe: str = "debian"  # codecs/<recipe>/Dockerfile
    binaries: tuple[str, ...] = ()
    version_script: str = ""
    default_timeout: float = 600.0
    settings: tuple = ()

    def __init__(self, mode: str | None = None, timeout: float | None = None):
        requested = (mode or os.environ.get(MODE_ENV) or "auto").strip().lower()
        if requested not in MODES:
            raise ValueError(f"{MODE_ENV}/mode must be one of {', '.join(MODES)}, "
                             f"got {requested!r}")
        self.requested_mode = requested
        env_timeout = os.environ.get(TIMEOUT_ENV)
        self.timeout = float(timeout or env_timeout or self.default_timeout)
        self._image: str | None = None

    # where it runs ---------------------------------------------------------------
    def missing_binaries(self) -> list[str]:
        return [b for b in self.binaries if shutil.which(b) is None]

    @property
    def mode(self) -> str:
        if self.requested_mode != "auto":
            return self.requested_mode
        return "native" if not self.missing_binaries() and self.native_ready() else "docker"

    def native_ready(self) -> bool:
        """Whatever besides the binaries the native mode needs (VTM: its cfg)."""
        return True

    def image(self) -> str:
        """The container image of this codec (raises CodecUnavailable if not built)."""
        if self._image is None:
            from harness.containers import ContainerError, find_image

            try:
                image = find_image(self.recipe)
            except ContainerError as exc:
                raise CodecUnavailable(f"{self.name}: {exc}") from None
            if image is None:
                raise CodecUnavailable(
                    f"{self.name}: its container image is not built; run "
                    f"`harness containers build {self.recipe}`")
            self._image = image
        return self._image

    def availability(self) -> Availability:
        mode = self.mode
        if mode == "native":
            missing = self.missing_binaries()
            if missing:
                return Availability(False, f"{', '.join(missing)} not on PATH "
                                           f"({MODE_ENV}=native); install "
                                           f"{self.native_hint()} or unset {MODE_ENV} to use "
                                           "the container")
            if not self.native_ready():
                return Availability(False, self.native_problem())
            return Availability(True)
        from harness.containers import engine_available

        ok, why = engine_available()
        if not ok:
            missing = ", ".join(self.missing_binaries()) or "the binaries"
            return Availability(False, f"{missing} not on PATH and no container: {why}")
        try:
            self.image()
        except CodecUnavailable as exc:
            return Availability(False, str(exc).removeprefix(f"{self.name}: "))
        return Availability(True)

    def native_hint(self) -> str:
        return " ".join(self.binaries)

    def native_problem(self) -> str:
        return ""

    def _runner(self):
        if self.mode == "native":
            return _native_runner()
        from harness.containers import get_worker

        return get_worker(self.image(), call_timeout=max(self.timeout, 120))

    def _call(self, what: str) -> _Call:
        return _Call(self, what)

    # versions ----------------------------------------------------------------------
    def version(self) -> str:
        mode = self.mode
        if mode == "native":
            where = os.pathsep.join(str(shutil.which(b)) for b in self.binaries)
        else:
            available = self.availability()
            if not available.ok:
                raise CodecUnavailable(f"{self.name}: {available.reason}")
            where = self.image()
        script = self.version_command()
        key = (self.name, mode, where, script)
        if key not in _versions:
            # A lookup runs the binaries (or starts a container): later processes reuse it
            # while the binaries are the same files, or the image the same image.
            stamp = self._binaries_stamp(mode, where)
            recorded_key = hashlib.sha256(repr((key, stamp)).encode()).hexdigest()
            version = _recorded_versions().get(recorded_key) if stamp else None
            if version is None:
                with self._call("version lookup") as call:
                    result = call.runner.run(["sh", "-c", script], 120)
                if result.returncode != 0 or result.timed_out:
                    raise ExternalCodecError(f"{self.name}: the version lookup failed"
                                             f" ({mode}): {result.tail()}")
                version = _clean_version(result.stdout.decode(errors="replace"))
                if stamp:
                    _record_version(recorded_key, version)
            _versions[key] = version
        return _versions[key]

    def _binaries_stamp(self, mode: str, where: str) -> str | None:
        """What changes when the binaries do: each file's size, mtime and inode, or the
        image's id; None if it cannot be told (then nothing is recorded)."""
        try:
            if mode == "native":
                stats = [os.stat(path) for path in where.split(os.pathsep)]
                return ";".join(f"{s.st_size}:{s.st_mtime_ns}:{s.st_ino}" for s in stats)
            from harness.containers import docker_client

            return docker_client().images.get(where).id
        except Exception:  # noqa: BLE001 - any failure only means: look the version up
            return None

    def version_command(self) -> str:
        """A shell script printing the versions that decide the output."""
        return self.version_script

    def fingerprint(self) -> str:
        return fingerprint_of(self.name, "external", *self.settings, self.version())

    # file in, file out ---------------------------------------------------------------
    # Most codecs read an RGB image file and write a bitstream, and the decoder writes
    # an image file back; they only say their commands and file types. (VTM and x265
    # take planar YCbCr and override encode/decode.)
    source_format = "ppm"  # the image file the encoder reads: "ppm" or "png"
    extension = ""  # the bitstream's
    decoded_format = "ppm"  # the image file the decoder writes

    def encode_command(self, source: str, out: str, quality: Quality) -> list[str]:
        raise NotImplementedError

    def decode_command(self, source: str, out: str) -> list[str]:
        raise NotImplementedError

    def encode(self, image: np.ndarray, quality: Quality) -> bytes:
        check_image(image)
        quality = self.check_quality(quality)
        data = _png_bytes(image) if self.source_format == "png" else _ppm_bytes(image)
        with self._call("encode") as call:
            source = call.write(f"in.{self.source_format}", data)
            out = call.name(f"out.{self.extension}")
            call.run(self.encode_command(source, out, quality))
            return call.read(out)

    def decode(self, bitstream: bytes) -> np.ndarray:
        with self._call("decode") as call:
            source = call.write(f"in.{self.extension}", bitstream)
            out = call.name(f"out.{self.decoded_format}")
            call.run(self.decode_command(source, out))
            return _read_image(call.read(out))

    # helpers for subclasses -------------------------------------------------------------
    @staticmethod
    def _number(quality: Quality) -> str:
        return f"{quality:g}" if isinstance(quality, float) else str(quality)


class _QPCodec(ExternalCodec):
    qualities = (47, 42, 37, 32, 27, 22)
    quality_label = "QP (lower is better)"

    def check_quality(self, quality: Quality) -> Quality:
        return integer_quality(quality, 0, 51, f"{self.name} quality (a QP)")


class BPG(_QPCodec):
    name = "bpg"
    seconds_per_megapixel = 4.0  # declared, on one core
    description = "BPG444 (libbpg 0.9.8, x265 backend), 4:4:4, BT.601 full range"
    quality_label = "QP (bpgenc -q), lower is better"
    recipe = "bpg"
    binaries = ("bpgenc", "bpgdec")
    version_script = ("bpgenc -h 2>&1 | head -n 1; "
                      "cat /usr/local/share/lic-harness/provenance.txt 2>/dev/null || true")
    settings = ("-f 444 -e x265 -c ycbcr -b 8 -m 8",)
    source_format, extension = "png", "bpg"

    def encode_command(self, source: str, out: str, quality: Quality) -> list[str]:
        return ["bpgenc", "-f", "444", "-e", "x265", "-c", "ycbcr", "-b", "8", "-m", "8",
                "-q", str(quality), "-o", out, source]

    def decode_command(self, source: str, out: str) -> list[str]:
        return ["bpgdec", "-o", out, source]


class VTM(_QPCodec):
    name = "vtm"
    seconds_per_megapixel = 130.0  # declared, on one core
    description = ("VVC intra, VTM reference software (encoder_intra_vtm.cfg), 4:4:4, "
                   "BT.709 full range")
    quality_label = "QP (EncoderApp -q), lower is better"
    recipe = "vtm"
    binaries = ("EncoderAppStatic", "DecoderAppStatic")
    default_timeout = 7200.0
    colour_matrix = colour.BT709
    settings = ("encoder_intra_vtm.cfg", "444", "InputBitDepth 8", "ConformanceWindowMode 1",
                "bt709 full range, rounded")

    def version_command(self) -> str:
        return ("EncoderAppStatic --help 2>&1 | grep -m 1 -i 'version' || true; "
                f"sha256sum {self.cfg_path()} | cut -d' ' -f1; "
                "cat /usr/local/share/lic-harness/provenance.txt 2>/dev/null || true")

    def cfg_path(self) -> str:
        if self.mode == "docker":
            return "/opt/vtm/cfg/encoder_intra_vtm.cfg"
        return str(self._native_cfg() or "encoder_intra_vtm.cfg")

    def _native_cfg(self) -> Path | None:
        env = os.environ.get(VTM_CFG_ENV)
        if env:
            return Path(env) if Path(env).is_file() else None
        binary = shutil.which("EncoderAppStatic")
        candidates = [Path("/opt/vtm/cfg/encoder_intra_vtm.cfg")]
        if binary:
            real = Path(binary).resolve()
            candidates[:0] = [real.parent.parent / "cfg" / "encoder_intra_vtm.cfg",
                              real.parent / "cfg" / "encoder_intra_vtm.cfg"]
        return next((c for c in candidates if c.is_file()), None)

    def native_ready(self) -> bool:
        return self._native_cfg() is not None

    def native_problem(self) -> str:
        return (f"VTM's cfg/encoder_intra_vtm.cfg was not found: set {VTM_CFG_ENV} to it, or "
                "unset HARNESS_CODEC_MODE to use the container")

    def encode(self, image: np.ndarray, quality: Quality) -> bytes:
        check_image(image)
        qp = self.check_quality(quality)
        height, width = image.shape[:2]
        ycc = colour.rgb_to_ycbcr(image, self.colour_matrix)
        with self._call("encode") as call:
            source = call.write("in.yuv", colour.to_planar(ycc))
            out = call.name("out.bin")
            call.run(["EncoderAppStatic", "-c", self.cfg_path(), "-i", source, "-b", out,
                      "-o", "/dev/null", "-wdt", str(width), "-hgt", str(height), "-fr", "1",
                      "-f", "1", "-q", str(qp), "--InputChromaFormat=444",
                      "--InputBitDepth=8", "--ConformanceWindowMode=1"])
            return call.read(out)

    def decode(self, bitstream: bytes) -> np.ndarray:
        try:
            width, height, chroma = vvc_picture_size(bitstream)
        except ValueError as exc:
            raise ExternalCodecError(f"vtm decode: {exc}") from None
        if chroma != 3:
            raise ExternalCodecError(f"vtm decode: the stream is not 4:4:4 "
                                     f"(chroma_format_idc {chroma})")
        with self._call("decode") as call:
            source = call.write("in.bin", bitstream)
            out = call.name("out.yuv")
            call.run(["DecoderAppStatic", "-b", source, "-o", out, "-d", "8"])
            data = call.read(out)
        try:
            ycc = colour.from_planar(data[:3 * width * height], height, width)
        except ValueError as exc:
            raise ExternalCodecError(f"vtm decode: {exc}") from None
        return colour.ycbcr_to_rgb(ycc, self.colour_matrix)


class X265(_QPCodec):
    name = "x265"
    seconds_per_megapixel = 4.0  # declared, on one core
    description = ("HEVC intra 4:4:4, x265 CLI (preset medium, tune psnr), BT.601 full "
                   "range; decoded with ffmpeg")
    quality_label = "QP (x265 --qp), lower is better"
    binaries = ("x265", "ffmpeg")
    colour_matrix = colour.BT601
    version_script = ("x265 --version 2>&1 | grep -m 1 'encoder version'; "
                      "ffmpeg -hide_banner -version | head -n 1; "
                      "dpkg-query -W -f '${Package}=${Version}\\n' x265 ffmpeg 2>/dev/null "
                      "|| true")
    settings = ("--preset medium --tune psnr --keyint 1 --no-info --pools 1 --frame-threads 1",
                "i444 8-bit", "bt601 full range, rounded")

    def native_hint(self) -> str:
        return "x265 and ffmpeg (apt-get install x265 ffmpeg)"

    def encode(self, image: np.ndarray, quality: Quality) -> bytes:
        check_image(image)
        qp = self.check_quality(quality)
        height, width = image.shape[:2]
        ycc = colour.rgb_to_ycbcr(image, self.colour_matrix)
        with self._call("encode") as call:
            source = call.write("in.yuv", colour.to_planar(ycc))
            out = call.name("out.hevc")
            call.run(["x265", "--input", source, "--input-res", f"{width}x{height}",
                      "--input-csp", "i444", "--input-depth", "8", "--fps", "1",
                      "--frames", "1", "--preset", "medium", "--tune", "psnr",
                      "--qp", str(qp), "--keyint", "1", "--no-info", "--range", "full",
                      "--colormatrix", "bt470bg", "--pools", "1", "--frame-threads", "1",
                      "--log-level", "error", "--output", out])
            return call.read(out)

    def decode(self, bitstream: bytes) -> np.ndarray:
        with self._call("decode") as call:
            source = call.write("in.hevc", bitstream)
            out = call.name("out.y4m")
            call.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
                      "-threads", "1", "-f", "hevc", "-i", source, "-frames:v", "1",
                      "-f", "yuv4mpegpipe", "-pix_fmt", "yuv444p", "-strict", "-1", out])
            data = call.read(out)
        try:
            ycc = read_y4m_444(data)
        except (ValueError, KeyError) as exc:
            raise ExternalCodecError(f"x265 decode: ffmpeg's output: {exc}") from None
        return colour.ycbcr_to_rgb(ycc, self.colour_matrix)


class AVIF(ExternalCodec):
    name = "avif"
    seconds_per_megapixel = 6.0  # declared, on one core
    description = "AVIF (libavif avifenc/avifdec, aom encoder, speed 6), 4:4:4, full range"
    qualities = (56, 48, 40, 32, 24, 16, 8)
    quality_label = "AV1 quantizer (avifenc --min/--max 0-63), lower is better"
    binaries = ("avifenc", "avifdec")
    version_script = ("avifenc --version 2>&1 | head -n 1; "
                      "dpkg-query -W -f '${Package}=${Version}\\n' libavif-bin libaom3 "
                      "libdav1d6 2>/dev/null || true")
    settings = ("-c aom -s 6 -j 1 -y 444 -d 8 -r full --cicp 1/13/6",)
    source_format, extension, decoded_format = "png", "avif", "png"

    def native_hint(self) -> str:
        return "avifenc and avifdec (apt-get install libavif-bin)"

    def check_quality(self, quality: Quality) -> Quality:
        return integer_quality(quality, 0, 63, "avif quality (an AV1 quantizer)")

    def encode_command(self, source: str, out: str, quality: Quality) -> list[str]:
        q = str(quality)
        return ["avifenc", "-c", "aom", "-s", "6", "-j", "1", "-y", "444", "-d", "8",
                "-r", "full", "--cicp", "1/13/6", "--min", q, "--max", q, source, out]

    def decode_command(self, source: str, out: str) -> list[str]:
        return ["avifdec", "-j", "1", "-d", "8", source, out]


class JPEGXL(ExternalCodec):
    name = "jpegxl"
    seconds_per_megapixel = 3.0  # declared, on one core
    description = "JPEG XL (libjxl cjxl/djxl), effort 7, VarDCT in XYB"
    qualities = (10.0, 6.0, 4.0, 3.0, 2.0, 1.5, 1.0, 0.5)
    quality_label = "Butteraugli distance (cjxl -d), lower is better"
    binaries = ("cjxl", "djxl")
    version_script = ("cjxl --version 2>&1 | head -n 1; djxl --version 2>&1 | head -n 1; "
                      "dpkg-query -W -f '${Package}=${Version}\\n' libjxl-tools 2>/dev/null "
                      "|| true")
    settings = ("-e 7", "--num_threads=0")
    extension = "jxl"

    def native_hint(self) -> str:
        return "cjxl and djxl (apt-get install libjxl-tools)"

    def check_quality(self, quality: Quality) -> Quality:
        if not 0 < quality <= 25:
            raise ValueError(f"jpegxl quality is a Butteraugli distance in (0, 25], "
                             f"got {quality}")
        return float(quality)

    def encode_command(self, source: str, out: str, quality: Quality) -> list[str]:
        return ["cjxl", source, out, "-d", f"{quality:g}", "-e", "7", "--num_threads=0",
                "--quiet"]

    def decode_command(self, source: str, out: str) -> list[str]:
        return ["djxl", source, out, "--bits_per_sample=8", "--num_threads=0", "--quiet"]


class WebPCLI(ExternalCodec):
    name = "webp-cli"
    seconds_per_megapixel = 3.0  # declared, on one core
    description = "WebP lossy (libwebp cwebp/dwebp), 4:2:0, method 6"
    qualities = (10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
    quality_label = "cwebp quality 0-100"
    binaries = ("cwebp", "dwebp")
    version_script = ("echo cwebp $(cwebp -version 2>&1 | head -n 1); "
                      "echo dwebp $(dwebp -version 2>&1 | head -n 1); "
                      "dpkg-query -W -f '${Package}=${Version}\\n' webp 2>/dev/null || true")
    settings = ("-m 6",)
    extension = "webp"

    def native_hint(self) -> str:
        return "cwebp and dwebp (apt-get install webp)"

    def check_quality(self, quality: Quality) -> Quality:
        return integer_quality(quality, 0, 100, "webp-cli quality")

    def encode_command(self, source: str, out: str, quality: Quality) -> list[str]:
        return ["cwebp", "-quiet", "-q", str(quality), "-m", "6", source, "-o", out]

    def decode_command(self, source: str, out: str) -> list[str]:
        return ["dwebp", "-quiet", source, "-ppm", "-o", out]


class JPEG2000CLI(ExternalCodec):
    name = "jpeg2000-cli"
    seconds_per_megapixel = 3.0  # declared, on one core
    description = "JPEG 2000 (OpenJPEG opj_compress/opj_decompress), 9/7 + ICT, J2K codestream"
    qualities = (192, 96, 48, 24, 12, 6)
    quality_label = "compression ratio (opj_compress -r; about 24/R bpp), lower is better"
    binaries = ("opj_compress", "opj_decompress")
    version_script = ("opj_compress -h 2>&1 | grep -m 1 'openjp2 library'; "
                      "dpkg-query -W -f '${Package}=${Version}\\n' libopenjp2-tools "
                      "2>/dev/null || true")
    settings = ("-I", "-threads 1", ".j2k")
    extension = "j2k"

    def native_hint(self) -> str:
        return "opj_compress and opj_decompress (apt-get install libopenjp2-tools)"

    def check_quality(self, quality: Quality) -> Quality:
        if not 1 < quality <= 10000:
            raise ValueError(f"jpeg2000-cli quality is a compression ratio > 1, got {quality}")
        return int(quality) if quality == int(quality) else float(quality)

    def encode_command(self, source: str, out: str, quality: Quality) -> list[str]:
        return ["opj_compress", "-i", source, "-o", out, "-r", self._number(quality), "-I",
                "-threads", "1"]

    def decode_command(self, source: str, out: str) -> list[str]:
        return ["opj_decompress", "-i", source, "-o", out, "-threads", "1"]


EXTERNAL_CODECS = (BPG, VTM, X265, AVIF, JPEGXL, WebPCLI, JPEG2000CLI)
