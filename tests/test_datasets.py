import hashlib
import importlib.resources
import io
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pooch
import pytest
from PIL import Image

from harness.datasets import (
    ChecksumMismatch,
    Dataset,
    ImageRef,
    archives,
    default_data_dir,
    describe,
    download,
    list_manifests,
    load_manifest,
    manifests,
    resolve_dataset,
)
from harness.errors import DatasetUnavailable, HarnessError, UsageError
from harness.images import load_image
from tests.conftest import REPO


def png_bytes(seed: int, size=(6, 5)) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)).save(
        buf, "PNG"
    )
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_manifest(path: Path, body: str) -> Path:
    path.write_text(body, encoding="utf-8")
    return path


@pytest.fixture
def data_dir(tmp_path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise ConnectionError("network is unreachable")

    monkeypatch.setattr(pooch, "retrieve", refuse)


def use_manifests(monkeypatch, *paths: Path) -> None:
    monkeypatch.setattr(manifests, "_manifest_paths", lambda: list(paths))


# --------------------------------------------------------------------------- manifests


def test_shipped_manifests(data_dir):
    infos = {i.name: i for i in list_manifests(data_dir)}
    assert set(infos) == {"kodak", "clic", "tecnick", "tecnick-100", "sample"}
    assert infos["kodak"].id == "kodak" and infos["kodak"].image_count == 24
    assert infos["clic"].id == "clic2020-pro-valid" != "clic2020-professional"
    assert infos["clic"].image_count == 41
    assert infos["tecnick"].id == "tecnick-C00C00" and infos["tecnick"].image_count == 40
    assert infos["tecnick"].parameters == {"phase": "C00C00"}
    assert infos["tecnick-100"].image_count == 100
    assert infos["sample"].present and infos["sample"].source == "embedded"
    assert not infos["kodak"].present
    assert all(i.licence for i in infos.values())
    assert "low confidence" in infos["tecnick"].licence
    line = infos["tecnick"].describe()
    assert "tecnick:phase=C00C00" in line and "tecnick-C00C00" in line and "\n" not in line


def test_kodak_manifest_lists_24_files_and_the_set_check():
    path = next(i.manifest_path for i in list_manifests() if i.name == "kodak")
    m = load_manifest(path)
    assert [f.name for f in m.files] == [f"kodim{i:02d}.png" for i in range(1, 25)]
    assert m.files[0].url == "http://r0k.us/graphics/kodak/kodak/kodim01.png"
    assert m.set_check.algorithm == "sha1"
    assert m.set_check.digest == "076e2a5fd4515b5fda677f15fe63dd112d266bc5"
    assert "NeuralCompression" in m.set_check.source


def test_clic_and_tecnick_archives():
    by_name = {i.name: load_manifest(i.manifest_path) for i in list_manifests()}
    clic = by_name["clic"].archives[0]
    assert clic.sha256 == "00be38092ade2ab5163b65f7f6523d46c7bca147007f559adbb02c0afc236b7d"
    assert clic.url.endswith("/professional_valid_2020.zip") and clic.format == "zip"
    tecnick = by_name["tecnick"]
    assert tecnick.archives[0].sha256 is None and tecnick.archives[0].format == "tar"
    assert any("no published checksum" in n for n in tecnick.notes)
    assert "{phase}" in tecnick.archives[0].members


def test_manifests_found_through_importlib_resources(monkeypatch):
    source = REPO / "datasets"
    calls = []

    def fake_files(name):
        calls.append(name)
        return source

    monkeypatch.setattr(importlib.resources, "files", fake_files)
    names = [p.name for p in manifests._manifest_paths()]
    assert calls == ["harness._manifests"]
    assert "kodak.toml" in names and len(names) == 5


def test_manifests_fall_back_to_the_source_tree(monkeypatch):
    def missing(name):
        raise ModuleNotFoundError(f"No module named {name!r}")

    monkeypatch.setattr(importlib.resources, "files", missing)
    names = [p.name for p in manifests._manifest_paths()]
    assert names == sorted(
        ["clic.toml", "kodak.toml", "sample.toml", "tecnick.toml", "tecnick-100.toml"]
    )


def test_bad_manifest_is_a_usage_error(tmp_path):
    path = write_manifest(tmp_path / "bad.toml", 'id = "x"\n[[files]]\nname = "../a.png"\n')
    with pytest.raises(UsageError, match="not a plain relative path"):
        load_manifest(path)
    path = write_manifest(tmp_path / "bad2.toml", 'id = "x-{phase}"\n[[archives]]\nurl="u"\n')
    with pytest.raises(UsageError, match="uses fields"):
        load_manifest(path)


# --------------------------------------------------------------------------- sample


def test_sample_dataset_offline(data_dir, no_network):
    ds = resolve_dataset("sample", data_dir=data_dir, download=False)
    assert isinstance(ds, Dataset) and ds.source == "embedded" and ds.id == "sample"
    assert [r.image_id for r in ds.images] == [
        "astronaut.png",
        "chelsea.png",
        "coffee.png",
        "rocket.png",
    ]
    manifest = load_manifest(next(i.manifest_path for i in list_manifests() if i.name == "sample"))
    expected = {f.name: f.sha256 for f in manifest.files}
    for ref in ds.images:
        assert isinstance(ref, ImageRef) and ref.dataset == "sample"
        assert sha256(ref.path.read_bytes()) == expected[ref.image_id]
        loaded = load_image(ref.path)
        assert loaded.pixels.dtype == np.uint8 and loaded.pixels.ndim == 3
        assert loaded.pixels.shape[2] == 3 and loaded.warnings == ()
    assert not any(data_dir.iterdir())
    assert describe(ds) == f"sample: 4 images in {ds.root} (embedded)"


# --------------------------------------------------------------------------- folders


def test_folder_dataset(tmp_path):
    root = tmp_path / "my images"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / ".hidden_dir").mkdir()
    (root / "b.png").write_bytes(png_bytes(1))
    (root / "A.PNG").write_bytes(png_bytes(2))
    (root / "sub" / "été photo.jpg").write_bytes(png_bytes(3))
    (root / "sub" / "deeper" / "c.webp").write_bytes(png_bytes(4))
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.png").write_bytes(png_bytes(5))
    (root / ".hidden_dir" / "x.png").write_bytes(png_bytes(6))
    try:
        os.symlink(root, root / "sub" / "loop")
    except (OSError, NotImplementedError):
        pass
    ds = resolve_dataset(str(root))
    assert ds.source == "folder" and ds.id.startswith("folder:my images-")
    assert [r.image_id for r in ds.images] == [
        "A.PNG",
        "b.png",
        "sub/deeper/c.webp",
        "sub/été photo.jpg",
    ]
    assert all(r.dataset == ds.id and r.path.is_file() for r in ds.images)
    assert ds.images[3].path == root.absolute() / "sub" / "été photo.jpg"


def test_bare_folder_name_resolves(tmp_path, monkeypatch):
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "a.png").write_bytes(png_bytes(1))
    monkeypatch.chdir(tmp_path)
    assert len(resolve_dataset("pics").images) == 1


def test_empty_folder(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("nothing")
    with pytest.raises(UsageError) as info:
        resolve_dataset(str(empty))
    message = str(info.value)
    assert str(empty) in message and ".png" in message and ".tiff" in message


def test_unknown_name_suggests(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError) as info:
        resolve_dataset("kodk")
    message = str(info.value)
    assert "Did you mean 'kodak'?" in message
    assert "clic, kodak, sample, tecnick, tecnick-100" in message


def test_missing_path(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        resolve_dataset(str(tmp_path / "nope"))


def test_parameter_errors(data_dir):
    with pytest.raises(UsageError, match="takes no parameter"):
        resolve_dataset("kodak:x", data_dir=data_dir, download=False)
    with pytest.raises(UsageError, match="not a valid phase"):
        resolve_dataset("tecnick:zz", data_dir=data_dir, download=False)


# --------------------------------------------------------------------------- downloads


def test_manifest_dataset_download_failure(data_dir, no_network):
    with pytest.raises(DatasetUnavailable) as info:
        resolve_dataset("kodak", data_dir=data_dir)
    message = str(info.value)
    assert str(data_dir / "kodak") in message
    assert "http://r0k.us/graphics/kodak/kodak/kodim01.png" in message
    assert "network is unreachable" in message
    assert "--datasets /path/to/folder" in message
    assert "Traceback" not in message and "\n" not in message
    assert not list((data_dir / "kodak").glob("*.png"))


def test_archive_dataset_download_failure(data_dir, no_network):
    with pytest.raises(DatasetUnavailable) as info:
        resolve_dataset("clic", data_dir=data_dir)
    message = str(info.value)
    assert "https://data.vision.ee.ethz.ch/cvl/clic/professional_valid_2020.zip" in message
    assert str(data_dir / "clic2020-pro-valid") in message
    assert str(data_dir / "_archives" / "professional_valid_2020.zip") in message


def files_manifest(tmp_path: Path, blobs: dict[str, bytes], *, with_sha=True, set_check=None):
    src = tmp_path / "server"
    src.mkdir(exist_ok=True)
    body = 'schema = 1\nname = "tiny"\nid = "tiny"\ntitle = "Tiny"\n'
    body += f"image_count = {len(blobs)}\n"
    if set_check:
        body += f'[set_check]\nalgorithm = "sha1"\ndigest = "{set_check}"\n'
    for name, blob in blobs.items():
        (src / name).write_bytes(blob)
        body += f'[[files]]\nname = "{name}"\nurl = "{(src / name).as_uri()}"\n'
        if with_sha:
            body += f'sha256 = "{sha256(blob)}"\n'
    return write_manifest(tmp_path / "tiny.toml", body)


def test_files_dataset_downloads_verifies_and_pins(tmp_path, data_dir, monkeypatch):
    blobs = {"one.png": png_bytes(1), "two.png": png_bytes(2)}
    manifest = files_manifest(tmp_path, blobs)
    ds = resolve_dataset(str(manifest), data_dir=data_dir)
    assert ds.id == "tiny" and [r.image_id for r in ds.images] == ["one.png", "two.png"]
    assert ds.root == data_dir / "tiny"
    lock = (data_dir / "tiny" / "SHA256SUMS").read_text()
    assert lock == "".join(f"{sha256(b)}  {n}\n" for n, b in sorted(blobs.items()))
    assert not list((data_dir / "tiny").glob(".*.download"))

    def no_hashing(path):
        raise AssertionError(f"re-hashed {path}")

    monkeypatch.setattr(download, "_sha256_file", no_hashing)
    again = resolve_dataset(str(manifest), data_dir=data_dir, download=False)
    assert again.images == ds.images
    monkeypatch.undo()

    changed = data_dir / "tiny" / "two.png"
    changed.write_bytes(png_bytes(99))
    with pytest.raises(ChecksumMismatch) as info:
        resolve_dataset(str(manifest), data_dir=data_dir, download=False)
    message = str(info.value)
    assert str(changed) in message and sha256(blobs["two.png"]) in message
    assert sha256(png_bytes(99)) in message


def test_download_checksum_mismatch_is_not_kept(tmp_path, data_dir):
    manifest = files_manifest(tmp_path, {"one.png": png_bytes(1)})
    text = manifest.read_text().replace(sha256(png_bytes(1)), "0" * 64)
    manifest.write_text(text)
    with pytest.raises(ChecksumMismatch) as info:
        resolve_dataset(str(manifest), data_dir=data_dir)
    message = str(info.value)
    assert "one.png" in message and "0" * 64 in message and sha256(png_bytes(1)) in message
    assert "not kept" in message
    assert not list((data_dir / "tiny").iterdir())


def test_pooch_path_and_its_checksum_error(tmp_path, data_dir, monkeypatch):
    blob = png_bytes(7)
    seen = []

    def fake_retrieve(url, known_hash, fname, path, progressbar):
        seen.append((url, known_hash, fname, progressbar))
        if known_hash and known_hash != f"sha256:{sha256(blob)}":
            raise ValueError(
                f"SHA256 hash of downloaded file ({fname}) does not match the known hash: "
                f"expected {known_hash[7:]}, got {sha256(blob)}."
            )
        Path(path, fname).write_bytes(blob)
        return str(Path(path, fname))

    monkeypatch.setattr(pooch, "retrieve", fake_retrieve)
    body = (
        'id = "web"\n[[files]]\nname = "w.png"\nurl = "https://example.org/w.png"\n'
        f'sha256 = "{sha256(blob)}"\n'
    )
    manifest = write_manifest(tmp_path / "web.toml", body)
    ds = resolve_dataset(str(manifest), data_dir=data_dir)
    assert ds.images[0].path.read_bytes() == blob
    assert seen[0][:3] == ("https://example.org/w.png", f"sha256:{sha256(blob)}", ".w.png.download")
    assert seen[0][3] is False

    manifest.write_text(body.replace(sha256(blob), "f" * 64).replace('"web"', '"web2"'))
    with pytest.raises(ChecksumMismatch) as info:
        resolve_dataset(str(manifest), data_dir=data_dir)
    assert "f" * 64 in str(info.value) and sha256(blob) in str(info.value)
    assert not (data_dir / "web2" / "w.png").exists()


def test_set_check(tmp_path, data_dir):
    blobs = {"a.png": png_bytes(1), "b.png": png_bytes(2)}
    good = hashlib.sha1(blobs["a.png"] + blobs["b.png"]).hexdigest()
    manifest = files_manifest(tmp_path, blobs, with_sha=False, set_check=good)
    ds = resolve_dataset(str(manifest), data_dir=data_dir)
    assert len(ds.images) == 2 and (data_dir / "tiny" / "SHA256SUMS").is_file()

    other = data_dir / "other"
    manifest = files_manifest(tmp_path, blobs, with_sha=False, set_check="1" * 40)
    with pytest.raises(ChecksumMismatch) as info:
        resolve_dataset(str(manifest), data_dir=other)
    message = str(info.value)
    assert "1" * 40 in message and good in message and "SHA1" in message
    assert not list((other / "tiny").glob("*.png"))
    assert not (other / "tiny" / "SHA256SUMS").exists()


def test_files_without_checksum_are_pinned_on_first_use(tmp_path, data_dir, caplog):
    manifest = files_manifest(tmp_path, {"a.png": png_bytes(1)}, with_sha=False)
    with caplog.at_level("WARNING", logger="harness.datasets"):
        resolve_dataset(str(manifest), data_dir=data_dir)
    assert "trust on first use" in caplog.text
    (data_dir / "tiny" / "a.png").write_bytes(png_bytes(2))
    with pytest.raises(ChecksumMismatch, match="SHA256SUMS"):
        resolve_dataset(str(manifest), data_dir=data_dir)


# --------------------------------------------------------------------------- archives


def make_zip(path: Path, members: dict[str, bytes], compress=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compress) as zf:
        for name, blob in members.items():
            zf.writestr(name, blob)
    return path


def archive_manifest(
    tmp_path: Path,
    archive: Path,
    members: str,
    *,
    sha=None,
    fmt="zip",
    count=2,
    ident="arch",
    extra="",
) -> Path:
    body = (
        f'id = "{ident}"\ntitle = "Archive set"\nimage_count = {count}\n{extra}'
        f'[[archives]]\nurl = "{archive.as_uri()}"\nfilename = "{archive.name}"\n'
        f'format = "{fmt}"\nmembers = "{members}"\n'
    )
    if sha:
        body += f'sha256 = "{sha}"\n'
    return write_manifest(tmp_path / f"{ident}.toml", body)


def test_zip_archive_extracts_only_matching_members(tmp_path, data_dir, monkeypatch):
    archive = make_zip(
        tmp_path / "set.zip",
        {
            "top/valid/a.png": png_bytes(1),
            "top/valid/b.png": png_bytes(2),
            "top/valid/readme.txt": b"text",
            "top/other/c.png": png_bytes(3),
            "__MACOSX/top/valid/._a.png": b"resource fork",
        },
    )
    manifest = archive_manifest(
        tmp_path, archive, "**/valid/*.png", sha=sha256(archive.read_bytes())
    )
    ds = resolve_dataset(str(manifest), data_dir=data_dir)
    root = data_dir / "arch"
    assert [r.image_id for r in ds.images] == ["a.png", "b.png"]
    assert sorted(p.name for p in root.iterdir()) == [
        ".SHA256SUMS.stat.json",
        "SHA256SUMS",
        "a.png",
        "b.png",
    ]
    assert (root / "a.png").read_bytes() == png_bytes(1)
    assert (data_dir / "_archives" / "set.zip").is_file()
    assert not ds.notes

    monkeypatch.setattr(download, "_sha256_file", lambda p: pytest.fail(f"re-hashed {p}"))
    assert resolve_dataset(str(manifest), data_dir=data_dir, download=False).images == ds.images


def tecnick_tar(path: Path) -> Path:
    with tarfile.open(path, "w:bz2") as tf:
        for phase in ("C00C00", "T01R01"):
            for i, name in enumerate(("ducks", "tree")):
                blob = png_bytes(hash((phase, i)) % 1000)
                info = tarfile.TarInfo(
                    f"SAMPLING_8BIT_RGB_1200x1200/{phase}/img_1200x1200_3x8bit_{phase}_RGB_{name}.png"
                )
                info.size = len(blob)
                tf.addfile(info, io.BytesIO(blob))
    return path


def test_tecnick_phase_selection_with_the_real_manifest(tmp_path, data_dir, monkeypatch, caplog):
    archive = tecnick_tar(tmp_path / "tecnick.tar.bz2")
    urls = []

    def fake_retrieve(url, known_hash, fname, path, progressbar):
        urls.append((url, known_hash))
        shutil.copyfile(archive, Path(path, fname))

    monkeypatch.setattr(pooch, "retrieve", fake_retrieve)
    with caplog.at_level("WARNING", logger="harness.datasets"):
        default = resolve_dataset("tecnick", data_dir=data_dir)
    assert "no published checksum" in caplog.text
    assert urls == [
        (
            "https://sourceforge.net/projects/testimages/files/SAMPLING/8BIT/RGB/"
            "SAMPLING_8BIT_RGB_1200x1200.tar.bz2/download",
            None,
        )
    ]
    assert default.id == "tecnick-C00C00"
    assert [r.image_id for r in default.images] == [
        "img_1200x1200_3x8bit_C00C00_RGB_ducks.png",
        "img_1200x1200_3x8bit_C00C00_RGB_tree.png",
    ]
    assert any("no published checksum" in n for n in default.notes)
    assert any("expects 40 images but 2" in n for n in default.notes)
    pins = (data_dir / "_archives" / "SHA256SUMS").read_text()
    assert pins == f"{sha256(archive.read_bytes())}  SAMPLING_8BIT_RGB_1200x1200.tar.bz2\n"

    other = resolve_dataset("tecnick:t01r01", data_dir=data_dir)
    assert other.id == "tecnick-T01R01" and other.root == data_dir / "tecnick-T01R01"
    assert all("_T01R01_" in r.image_id and r.dataset == "tecnick-T01R01" for r in other.images)
    assert len(urls) == 1
    assert resolve_dataset("tecnick-T01R01", data_dir=data_dir).images == other.images

    with pytest.raises(DatasetUnavailable, match="No member .* matches"):
        resolve_dataset("tecnick:B01C00", data_dir=data_dir)

    archived = data_dir / "_archives" / "SAMPLING_8BIT_RGB_1200x1200.tar.bz2"
    archived.write_bytes(archived.read_bytes() + b"x")
    with pytest.raises(ChecksumMismatch, match="_archives"):
        resolve_dataset("tecnick:B01C00", data_dir=data_dir)


def test_zip_with_parent_path_is_refused(tmp_path, data_dir):
    archive = make_zip(
        tmp_path / "evil.zip",
        {
            "good/a.png": png_bytes(1),
            "../evil.png": png_bytes(2),
        },
    )
    manifest = archive_manifest(tmp_path, archive, "**/*.png")
    with pytest.raises(HarnessError) as info:
        resolve_dataset(str(manifest), data_dir=data_dir)
    message = str(info.value)
    assert "Refusing to extract" in message and "'../evil.png'" in message and ".." in message
    assert not (data_dir / "evil.png").exists() and not (tmp_path / "evil.png").exists()
    assert not list((data_dir / "arch").glob("*.png"))


def test_tar_with_symlink_or_absolute_member_is_refused(tmp_path, data_dir):
    link = tmp_path / "link.tar"
    with tarfile.open(link, "w") as tf:
        info = tarfile.TarInfo("set/passwd.png")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tf.addfile(info)
    manifest = archive_manifest(tmp_path, link, "set/*.png", fmt="tar", ident="linky")
    with pytest.raises(HarnessError) as info:
        resolve_dataset(str(manifest), data_dir=data_dir)
    assert "'set/passwd.png' is a symlink" in str(info.value)
    assert not (data_dir / "linky" / "passwd.png").exists()

    absolute = tmp_path / "abs.tar"
    with tarfile.open(absolute, "w") as tf:
        blob = png_bytes(1)
        info = tarfile.TarInfo(str(tmp_path / "outside.png"))
        info.size = len(blob)
        tf.addfile(info, io.BytesIO(blob))
    manifest = archive_manifest(tmp_path, absolute, "**/*.png", fmt="tar", ident="absy")
    with pytest.raises(HarnessError, match="has an absolute path"):
        resolve_dataset(str(manifest), data_dir=data_dir)
    assert not (tmp_path / "outside.png").exists()


def test_archive_checksum_mismatch_removes_the_download(tmp_path, data_dir):
    archive = make_zip(tmp_path / "set.zip", {"a.png": png_bytes(1), "b.png": png_bytes(2)})
    manifest = archive_manifest(tmp_path, archive, "*.png", sha="e" * 64)
    with pytest.raises(ChecksumMismatch) as info:
        resolve_dataset(str(manifest), data_dir=data_dir)
    assert "e" * 64 in str(info.value) and sha256(archive.read_bytes()) in str(info.value)
    assert not list((data_dir / "_archives").iterdir())
    assert not (data_dir / "arch").exists() or not list((data_dir / "arch").iterdir())


def test_damaged_member_leaves_no_half_file(tmp_path, data_dir):
    blob = png_bytes(1, size=(40, 40))
    archive = make_zip(
        tmp_path / "set.zip", {"a.png": png_bytes(2), "b.png": blob}, compress=zipfile.ZIP_STORED
    )
    raw = bytearray(archive.read_bytes())
    at = raw.rindex(blob[100:120])
    raw[at] ^= 0xFF
    archive.write_bytes(bytes(raw))
    manifest = archive_manifest(tmp_path, archive, "*.png")
    with pytest.raises(DatasetUnavailable, match="Extracting .* failed"):
        resolve_dataset(str(manifest), data_dir=data_dir)
    leftovers = [p.name for p in (data_dir / "arch").iterdir()]
    assert "b.png" not in leftovers and "SHA256SUMS" not in leftovers
    assert not [n for n in leftovers if n.endswith(".partial")]


def test_web_page_instead_of_archive(tmp_path, data_dir):
    page = tmp_path / "page.zip"
    page.write_text("<!DOCTYPE html><html><body>Download will start</body></html>")
    manifest = archive_manifest(tmp_path, page, "*.png")
    with pytest.raises(DatasetUnavailable, match="looks like a web page"):
        resolve_dataset(str(manifest), data_dir=data_dir)
    assert not (data_dir / "_archives" / "page.zip").exists()


def test_extracted_images_placed_by_hand_are_accepted(tmp_path, data_dir, no_network):
    archive = tmp_path / "absent.zip"
    manifest = archive_manifest(tmp_path, archive, "*.png", count=2)
    root = data_dir / "arch"
    root.mkdir()
    (root / "x.png").write_bytes(png_bytes(1))
    (root / "y.png").write_bytes(png_bytes(2))
    ds = resolve_dataset(str(manifest), data_dir=data_dir)
    assert [r.image_id for r in ds.images] == ["x.png", "y.png"]
    assert any("pinned" in n for n in ds.notes)
    assert (root / "SHA256SUMS").is_file()


# --------------------------------------------------------------------------- misc


def test_default_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path / "h"))
    assert default_data_dir() == tmp_path / "h"
    monkeypatch.delenv("HARNESS_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "lic-harness"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_data_dir() == tmp_path / "home" / ".cache" / "lic-harness"


def test_glob_semantics():
    rx = archives._glob_regex("**/img_*_{x}.png".replace("{x}", "C00C00"))
    assert rx.match("img_1_C00C00.png") and rx.match("a/b/img_1_C00C00.png")
    assert not rx.match("a/img_1_T01R01.png")
    rx = archives._glob_regex("set/*.png")
    assert rx.match("set/a.png") and not rx.match("set/sub/a.png") and not rx.match("a.png")


def _tar_of(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:bz2") as tf:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tf.addfile(info, io.BytesIO(blob))
    return path


def test_tar_member_name_with_a_newline_is_refused(tmp_path, data_dir):
    forged = "set/a.png\n" + "0" * 64 + "  evil.png"
    archive = _tar_of(tmp_path / "nl.tar.bz2", {forged: png_bytes(1), "set/b.png": png_bytes(2)})
    manifest = archive_manifest(tmp_path, archive, "set/*", fmt="tar", ident="forge")
    with pytest.raises(HarnessError, match="control character"):
        resolve_dataset(str(manifest), data_dir=data_dir)
    assert not (data_dir / "forge" / "SHA256SUMS").exists()


def test_a_member_above_the_size_cap_is_refused_while_streaming(tmp_path, data_dir, monkeypatch):
    # a small compressed archive that inflates far past the (lowered) cap
    archive = _tar_of(tmp_path / "bomb.tar.bz2", {"set/bomb.png": b"\0" * (4 << 20)})
    assert archive.stat().st_size < 2000
    manifest = archive_manifest(tmp_path, archive, "set/*.png", fmt="tar", ident="bomb")
    monkeypatch.setenv("HARNESS_MAX_IMAGE_BYTES", str(1 << 20))
    with pytest.raises(HarnessError, match="larger than the 1048576-byte limit"):
        resolve_dataset(str(manifest), data_dir=data_dir)
    assert not list((data_dir / "bomb").iterdir())


def test_a_member_whose_header_lies_is_capped_while_streaming(tmp_path, monkeypatch):
    archive = _tar_of(tmp_path / "liar.tar.bz2", {"set/bomb.png": b"\0" * 4096})
    member = archives._Member("set/bomb.png", "file", lambda: tarfile.open(archive).extractfile(
        "set/bomb.png"), size=10)  # the header claims 10 bytes
    monkeypatch.setenv("HARNESS_MAX_IMAGE_BYTES", "1000")
    with pytest.raises(HarnessError, match="larger than the 1000-byte limit"):
        archives._write_member(member, tmp_path / "bomb.png", archive)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["liar.tar.bz2"]


def test_links_leaving_a_folder_are_skipped_unless_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "far.png").write_bytes(png_bytes(3))
    root = tmp_path / "set"
    (root / "sub").mkdir(parents=True)
    (root / "a.png").write_bytes(png_bytes(1))
    (root / "inner.png").symlink_to(root / "a.png")  # stays inside: kept
    (root / "far.png").symlink_to(outside / "far.png")
    (root / "zero.png").symlink_to("/dev/zero")
    (root / "sub" / "everything").symlink_to("/")
    os.mkfifo(root / "pipe.png")

    ds = resolve_dataset(str(root))
    assert [r.image_id for r in ds.images] == ["a.png", "inner.png", "pipe.png"]
    notes = "\n".join(ds.notes)
    assert "far.png: a link to a file outside" in notes and "zero.png" in notes
    assert "everything: a link to a folder outside" in notes and "--follow-symlinks" in notes

    (root / "sub" / "everything").unlink()  # followed, it would walk the whole filesystem
    followed = resolve_dataset(str(root), follow_symlinks=True)
    ids = [r.image_id for r in followed.images if "/" not in r.image_id]
    assert ids == ["a.png", "far.png", "inner.png", "pipe.png", "zero.png"]
