"""The vmaf metric: YUV files and JSON output without Docker; the real score in the
codecs/vmaf container where its image is built."""

import io
import json
import math
import subprocess

import numpy as np
import pytest
from PIL import Image

from harness import containers
from harness.errors import UsageError
from harness.metrics import vmaf
from harness.metrics.registry import MetricSet, create_metric
from harness.metrics.ycbcr import YCbCrSettings, to_codes
from harness.store import ResultsStore
from tests.conftest import run_cli
from tests.test_containers import require_docker

# what `vmaf --json` writes for one frame (libvmaf 3.2.0's layout, values shortened)
TOOL_OUTPUT = """{
  "version": "3.2.0",
  "fps": 21.74,
  "frames": [
    {
      "frameNum": 0,
      "metrics": {
        "integer_adm2": 0.912644,
        "integer_motion": 0.000000,
        "vmaf": 61.875210
      }
    }
  ],
  "pooled_metrics": {
    "integer_adm2": {
      "min": 0.912644,
      "max": 0.912644,
      "mean": 0.912644,
      "harmonic_mean": 0.912644
    },
    "vmaf": {
      "min": 61.875210,
      "max": 61.875210,
      "mean": 61.875210,
      "harmonic_mean": 61.875210
    }
  },
  "aggregate_metrics": {
  }
}
"""


# --- no Docker needed --------------------------------------------------------------------

def test_planar_yuv_8_bit_is_one_byte_a_sample_plane_after_plane():
    codes = np.arange(3 * 2 * 3, dtype=np.float64).reshape(3, 2, 3)  # Y, U, V planes
    data = vmaf.planar_yuv(codes, 8)
    assert data == bytes(range(18))


def test_planar_yuv_10_bit_is_two_bytes_little_endian():
    codes = np.zeros((3, 1, 2))
    codes[0, 0] = (1023, 256)
    codes[2, 0, 1] = 513
    data = vmaf.planar_yuv(codes, 10)
    assert len(data) == 3 * 2 * 2
    assert data[:4] == bytes([0xFF, 0x03, 0x00, 0x01])  # 1023 = 0x3ff, 256 = 0x100
    assert data[-2:] == bytes([0x01, 0x02])  # 513 = 0x201


def test_planar_yuv_of_an_image_holds_the_metrics_code_values():
    image = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    settings = YCbCrSettings("bt709", 10)
    codes = to_codes(image, settings)
    back = np.frombuffer(vmaf.planar_yuv(codes, 10), "<u2").reshape(3, 5, 7)
    assert np.array_equal(back, codes)
    assert back.max() <= 1023


def test_pooled_score_reads_the_pooled_vmaf_mean():
    assert vmaf.pooled_score(TOOL_OUTPUT) == pytest.approx(61.87521)
    data = json.loads(TOOL_OUTPUT)
    data["pooled_metrics"]["vmaf"]["mean"] = None  # what the tool writes for NaN
    assert math.isnan(vmaf.pooled_score(json.dumps(data)))


@pytest.mark.parametrize("text", ["", "{}", '{"pooled_metrics": {"psnr_y": {"mean": 3}}}',
                                  "not json"])
def test_pooled_score_without_a_vmaf_mean_is_a_clear_error(text):
    with pytest.raises(vmaf.VMAFError, match="no pooled vmaf mean"):
        vmaf.pooled_score(text)


def test_command_line_names_the_format_the_files_are_written_in():
    argv = vmaf.vmaf_argv("r.yuv", "d.yuv", "o.json", 768, 512, 10)

    def option(name):
        return argv[argv.index(name) + 1]

    assert argv[0] == "vmaf" and "--json" in argv
    assert option("--reference") == "r.yuv" and option("--distorted") == "d.yuv"
    assert option("--width") == "768" and option("--height") == "512"
    assert option("--pixel_format") == "444" and option("--bitdepth") == "10"
    assert option("--model") == "version=vmaf_v0.6.1" and option("--output") == "o.json"


def test_without_the_image_the_metric_is_unavailable_and_says_how_to_build_it(monkeypatch):
    monkeypatch.setattr(containers, "find_image", lambda name, client=None: None)
    monkeypatch.setattr(containers, "docker_client", lambda timeout=None: _NoImages())
    vmaf._image.cache_clear()
    try:
        metric = create_metric("vmaf")
        reason = metric.unavailable()
        assert reason.startswith("needs the vmaf image, which is not built here")
        assert "harness containers build vmaf" in reason and "--source" in reason
        with pytest.raises(UsageError, match="cannot run here: it needs the vmaf image"):
            MetricSet(("vmaf",)).check_available()
        assert metric.fingerprint().endswith("libvmaf-unknown")
    finally:
        vmaf._image.cache_clear()


def test_without_docker_the_metric_is_unavailable(monkeypatch):
    def no_engine(timeout=None):
        raise containers.EngineUnavailable("the Docker engine is not reachable (test)")

    monkeypatch.setattr(containers, "docker_client", no_engine)
    vmaf._image.cache_clear()
    try:
        reason = create_metric("vmaf").unavailable()
        assert "needs the vmaf image and a Docker engine" in reason
        assert "not reachable" in reason
    finally:
        vmaf._image.cache_clear()


def test_run_without_a_docker_engine_refuses_vmaf_before_measuring(photo_folder, tmp_path):
    store = tmp_path / "r.sqlite"
    ran = run_cli("run", "--datasets", str(photo_folder), "--codecs", "jpeg", "--store",
                  str(store), "--metrics", "vmaf",
                  env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    assert ran.returncode == 2, ran.stderr
    assert "metric 'vmaf' cannot run here: it needs the vmaf image and a Docker engine" \
        in ran.stderr
    assert "not reachable" in ran.stderr and ".." not in ran.stderr
    assert not store.exists()


class _NoImages:
    def close(self):
        pass


class _FakeWorker:
    """Stands in for the worker container: records the call, answers as told."""

    def __init__(self, folder, returncode, stderr=b"", output=None):
        self.host_dir, self.returncode = folder, returncode
        self.stderr, self.output = stderr, output
        self.seen = []

    def run(self, argv, timeout):
        self.seen = sorted(p.name for p in self.host_dir.iterdir())
        if self.output is not None:
            (self.host_dir / argv[argv.index("--output") + 1]).write_text(self.output)
        return containers.CommandResult(list(argv), self.returncode, b"", self.stderr, 0.01)


@pytest.mark.parametrize("returncode, stderr, output, message", [
    (1, b"problem reading reference", None, "exit status 1: problem reading reference"),
    (0, b"", None, "vmaf wrote no output file"),
    (0, b"", "{}", "no pooled vmaf mean"),
])
def test_a_failed_tool_call_is_a_clear_error_and_leaves_no_files(
        monkeypatch, tmp_path, returncode, stderr, output, message):
    worker = _FakeWorker(tmp_path, returncode, stderr, output)
    monkeypatch.setattr(vmaf, "_image", lambda: ("lic-harness/vmaf:test", "3.2.0"))
    monkeypatch.setattr(containers, "get_worker", lambda image, call_timeout=0: worker)
    image = np.zeros((4, 6, 3), np.uint8)
    with pytest.raises(vmaf.VMAFError, match=message):
        _score(image, image)
    assert [name.split("-")[-1] for name in worker.seen] == ["dist.yuv", "ref.yuv"]
    assert list(tmp_path.iterdir()) == []


def test_the_score_comes_from_the_files_written_for_the_tool(monkeypatch, tmp_path):
    worker = _FakeWorker(tmp_path, 0, output=TOOL_OUTPUT)
    monkeypatch.setattr(vmaf, "_image", lambda: ("lic-harness/vmaf:test", "3.2.0"))
    monkeypatch.setattr(containers, "get_worker", lambda image, call_timeout=0: worker)
    image = np.zeros((4, 6, 3), np.uint8)
    value, fingerprint = _score(image, image, bits=8)
    assert value == pytest.approx(61.87521)
    assert fingerprint == "vmaf/v1/bt709-8bit/vmaf_v0.6.1/libvmaf-3.2.0"
    assert list(tmp_path.iterdir()) == []


# --- with the image ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def vmaf_image() -> str:
    require_docker()
    vmaf._image.cache_clear()
    tag = containers.find_image(vmaf.RECIPE)
    if tag is None:
        pytest.skip("the vmaf image is not built here (`harness containers build vmaf`; it"
                    " needs the upstream source or --source PATH)")
    return tag


@pytest.fixture(scope="module")
def photo_and_jpeg(sample_pixels):
    photo = np.ascontiguousarray(sample_pixels[72:328, 108:492])  # 256 x 384
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, "JPEG", quality=15)
    with Image.open(buffer) as im:
        return photo, np.asarray(im.convert("RGB"))


def _score(original, reconstruction, bits=10):
    return MetricSet(("vmaf",), YCbCrSettings("bt709", bits)).measure(
        original, reconstruction)["vmaf"]


def test_identical_images_score_near_100_and_a_jpeg_lower(vmaf_image, photo_and_jpeg):
    photo, jpeg = photo_and_jpeg
    same, fingerprint = _score(photo, photo)
    # one frame: the motion feature is 0, which caps vmaf_v0.6.1 at about 97.4
    assert 97.0 < same <= 100.0
    compressed, _ = _score(photo, jpeg)
    assert compressed < same - 10
    assert fingerprint == "vmaf/v1/bt709-10bit/vmaf_v0.6.1/libvmaf-3.2.0"
    assert _score(photo, jpeg, bits=8)[1] == "vmaf/v1/bt709-8bit/vmaf_v0.6.1/libvmaf-3.2.0"


def test_score_matches_the_vmaf_binary_run_by_hand(vmaf_image, photo_and_jpeg, tmp_path):
    photo, jpeg = photo_and_jpeg
    settings = YCbCrSettings("bt709", 10)
    for name, image in (("ref.yuv", photo), ("dist.yuv", jpeg)):
        codes = to_codes(image, settings)
        raw = codes.astype("<u2").tobytes()  # written here, not with the module's helper
        (tmp_path / name).write_bytes(raw)
    tmp_path.chmod(0o777)
    done = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "-v", f"{tmp_path}:/data",
         "-w", "/data", vmaf_image,
         "vmaf", "-r", "ref.yuv", "-d", "dist.yuv", "-w", "384", "-h", "256", "-p", "444",
         "-b", "10", "-m", "version=vmaf_v0.6.1", "--json", "-o", "/dev/stdout", "-q"],
        capture_output=True, text=True, timeout=120, check=True)
    by_hand = json.loads(done.stdout)["frames"][0]["metrics"]["vmaf"]
    assert _score(photo, jpeg)[0] == pytest.approx(by_hand, abs=1e-6)


def test_vmaf_in_a_run_is_stored_and_reused(vmaf_image, photo_folder, tmp_path):
    store = tmp_path / "r.sqlite"

    def run():
        ran = run_cli("run", "--datasets", str(photo_folder), "--codecs", "jpeg",
                      "--qualities", "30", "--metrics", "vmaf", "--jobs", "1", "--store",
                      str(store), "--no-progress", "--no-report")
        assert ran.returncode == 0, ran.stderr
        return ran

    assert "2 measurements to make, 0 already" in run().stderr
    with ResultsStore(store, readonly=True) as s:
        rows = s.rows()
    assert len(rows) == 2 and all(30 < r["vmaf"] < 97.5 for r in rows)
    assert "0 measurements to make, 2 already" in run().stderr
