"""`harness metrics add` on a real SQLite store made by real jpeg runs: from kept
bitstreams, decoded again by the row's codec; by encoding again with --reencode; and
refused, row by row, when the row's codec is not the one here."""

import shutil
import sqlite3

import pytest

from harness.store import ResultsStore
from tests.conftest import run_cli, stored_rows

NAMES = ("psnr-y", "ciede2000")


def _run(store, folder, *extra):
    ran = run_cli("run", "--datasets", str(folder), "--codecs", "jpeg", "--qualities", "30",
                  "60", "--jobs", "1", "--store", str(store), "--no-progress", "--no-report",
                  *extra)
    assert ran.returncode == 0, ran.stderr


def _values(store):
    with ResultsStore(store, readonly=True) as db:
        return {(r["image_id"], r["quality"]): tuple(r.get(n) for n in NAMES)
                for r in db.rows()}


def _add(store, *extra):
    return run_cli("metrics", "add", *NAMES, "--store", str(store), *extra)


@pytest.fixture(scope="module")
def stores(tmp_path_factory, sample_pixels):
    from tests.conftest import write_photo_crops

    root = tmp_path_factory.mktemp("add")
    folder = write_photo_crops(root / "photos", sample_pixels)
    made = {"fresh": root / "fresh.sqlite", "bitstreams": root / "b.sqlite",
            "plain": root / "p.sqlite"}
    _run(made["fresh"], folder, "--metrics", *NAMES)  # measured while running: the reference
    _run(made["bitstreams"], folder, "--save", "bitstreams")
    _run(made["plain"], folder)
    return made


def test_kept_bitstreams_are_decoded_again(stores):
    before = stored_rows(stores["bitstreams"])
    added = _add(stores["bitstreams"])
    assert added.returncode == 0, added.stderr
    assert ("added to 4 rows (0 from kept reconstructions, 4 from kept bitstreams decoded"
            " again, 0 re-encoded); 0 rows had them already") in added.stdout
    assert stored_rows(stores["bitstreams"]) == before  # the result rows are untouched
    got, want = _values(stores["bitstreams"]), _values(stores["fresh"])
    assert got.keys() == want.keys() and len(got) == 4
    for key in got:
        assert got[key] == pytest.approx(want[key], abs=1e-9)


def test_rows_without_files_are_listed_then_reencoded_on_request(stores, tmp_path):
    plain = tmp_path / "p.sqlite"
    shutil.copy(stores["plain"], plain)
    listed = _add(plain)
    assert listed.returncode == 1
    assert "4 rows have neither a kept reconstruction nor a kept bitstream" in listed.stderr
    assert "--reencode" in listed.stderr
    assert all(v == (None, None) for v in _values(plain).values())

    reencoded = _add(plain, "--reencode")
    assert reencoded.returncode == 0, reencoded.stderr
    assert "(0 from kept reconstructions, 0 from kept bitstreams decoded again, 4"\
           " re-encoded)" in reencoded.stdout
    got, want = _values(plain), _values(stores["fresh"])
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-9)


def test_a_row_whose_codec_changed_or_is_gone_is_refused(stores, tmp_path):
    store = tmp_path / "b.sqlite"
    shutil.copy(stores["bitstreams"], store)
    shutil.copytree(stores["bitstreams"].with_suffix(".artefacts"),
                    store.with_suffix(".artefacts"))
    with sqlite3.connect(store) as db:
        # one quality as if made by another version of jpeg, the other by a codec not here
        for table in ("results", "artefacts"):
            db.execute(f"UPDATE {table} SET codec_fingerprint = 'jpeg-older' WHERE quality = 30")
        db.execute("UPDATE results SET codec = 'jpeg-gone' WHERE quality = 60")
    added = _add(store)
    assert added.returncode == 1
    assert "added to 0 rows" in added.stdout
    assert "codec jpeg here has fingerprint" in added.stderr and "jpeg-older" in added.stderr
    assert "jpeg-gone" in added.stderr and "unknown codec" in added.stderr

    # with a changed file a re-encode is refused as well: its size is not the row's
    with sqlite3.connect(store) as db:
        db.execute("DELETE FROM artefacts")
        db.execute("UPDATE results SET codec = 'jpeg', codec_fingerprint = ("
                   " SELECT codec_fingerprint FROM results WHERE quality = 60 LIMIT 1),"
                   " bytes = bytes + 1 WHERE quality = 30")
    refused = _add(store, "--reencode")
    assert refused.returncode == 1
    assert "not the row's bitstream" in refused.stderr
