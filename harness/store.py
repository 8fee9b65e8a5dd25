"""The results store: one SQLite file, one row per measurement.

A measurement is keyed by what decides its outcome: the codec fingerprint, the
quality and the content hash of the image's pixels. The same photo in two datasets
is measured once. Which images make up which dataset is kept in ``images``;
``results_view`` joins the two into the rows users see (codec, dataset, image id,
bytes, bpp, PSNR, MS-SSIM, times, error).

Durability: every result is committed in its own transaction as it arrives (WAL
journal), so a process killed at any moment loses nothing already finished and
never leaves half a row. Rows with an error are measured again on the next run.
"""

from __future__ import annotations

import json
import math
import os
import platform
import socket
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

from harness.errors import StoreError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    started TEXT NOT NULL,
    ended TEXT,
    status TEXT NOT NULL,
    config TEXT NOT NULL,
    versions TEXT NOT NULL,
    host TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    dataset TEXT NOT NULL,
    image_id TEXT NOT NULL,
    image_hash TEXT,
    path TEXT NOT NULL,
    width INTEGER,
    height INTEGER,
    file_size INTEGER,
    file_mtime_ns INTEGER,
    warning TEXT,
    error TEXT,
    PRIMARY KEY (dataset, image_id)
);
CREATE TABLE IF NOT EXISTS results (
    codec TEXT NOT NULL,
    codec_fingerprint TEXT NOT NULL,
    quality REAL NOT NULL,
    image_hash TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    bytes INTEGER,
    bpp REAL,
    psnr REAL,
    ms_ssim REAL,
    ms_ssim_db REAL,
    encode_s REAL,
    decode_s REAL,
    error TEXT,
    note TEXT,
    run_id INTEGER,
    created TEXT NOT NULL,
    payload_bytes INTEGER,
    PRIMARY KEY (codec_fingerprint, quality, image_hash)
);
CREATE TABLE IF NOT EXISTS curves (
    name TEXT NOT NULL,
    dataset TEXT NOT NULL,
    source TEXT NOT NULL,
    document TEXT NOT NULL,
    imported TEXT NOT NULL,
    PRIMARY KEY (name, dataset)
);
CREATE VIEW IF NOT EXISTS results_view AS
    SELECT r.codec, r.codec_fingerprint, r.quality, i.dataset, i.image_id, r.image_hash,
           r.width, r.height, r.bytes, r.bpp, r.psnr, r.ms_ssim, r.ms_ssim_db,
           r.encode_s, r.decode_s, r.error, r.note, r.run_id, r.payload_bytes
    FROM results r JOIN images i ON i.image_hash = r.image_hash;
"""


@dataclass
class ResultRow:
    """One measurement of one codec at one quality on one image."""

    codec: str
    codec_fingerprint: str
    quality: float
    image_hash: str
    width: int
    height: int
    bytes: int | None = None
    bpp: float | None = None
    psnr: float | None = None
    ms_ssim: float | None = None
    ms_ssim_db: float | None = None
    encode_s: float | None = None
    decode_s: float | None = None
    error: str | None = None
    note: str | None = None
    payload_bytes: int | None = None  # entropy-coded payload alone (CompressAI's count)


@dataclass
class ImageRecord:
    """A dataset member as last seen: its pixels' hash and the file it came from."""

    dataset: str
    image_id: str
    path: str
    image_hash: str | None
    width: int | None
    height: int | None
    file_size: int | None
    file_mtime_ns: int | None
    warning: str | None = None
    error: str | None = None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _sql_float(value: float | None) -> float | None:
    # SQLite stores NaN as NULL; keep that explicit so readers map NULL back to NaN.
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


class ResultsStore:
    """An SQLite results file. Safe to open again while a killed run left it behind."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._add_missing_columns()
            self.db.executescript(_SCHEMA)
            self._check_schema_version()
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"cannot use {self.path} as a results store: {exc}. Pass another file"
                " with --store, or move this one away if it is not a harness store."
            ) from exc
        except OSError as exc:
            raise StoreError(f"cannot create the results store {self.path}: {exc}") from exc

    def _add_missing_columns(self) -> None:
        """Bring a store written before ``payload_bytes`` existed up to date."""
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(results)")}
        if columns and "payload_bytes" not in columns:
            with self.db:
                self.db.execute("ALTER TABLE results ADD COLUMN payload_bytes INTEGER")
                self.db.execute("DROP VIEW IF EXISTS results_view")

    def _check_schema_version(self) -> None:
        found = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if found is None:
            with self.db:
                self.db.execute("INSERT INTO meta VALUES ('schema_version', ?)",
                                (str(SCHEMA_VERSION),))
        elif int(found[0]) != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has store schema {found[0]}; this harness reads schema"
                f" {SCHEMA_VERSION}. Use a new --store file."
            )

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- runs -----------------------------------------------------------------------

    def start_run(self, config: dict, versions: dict) -> int:
        host = {"hostname": socket.gethostname(), "platform": platform.platform(),
                "python": platform.python_version(), "cpus": os.cpu_count(),
                "load_average": _load_average()}
        with self.db:
            cursor = self.db.execute(
                "INSERT INTO runs (started, status, config, versions, host)"
                " VALUES (?, 'running', ?, ?, ?)",
                (_now(), json.dumps(config, sort_keys=True), json.dumps(versions, sort_keys=True),
                 json.dumps(host, sort_keys=True)),
            )
        return int(cursor.lastrowid)

    def end_run(self, run_id: int, status: str) -> None:
        with self.db:
            self.db.execute("UPDATE runs SET ended=?, status=? WHERE run_id=?",
                            (_now(), status, run_id))

    def runs(self) -> list[dict]:
        cursor = self.db.execute("SELECT * FROM runs ORDER BY run_id")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor]

    # --- images ---------------------------------------------------------------------

    def known_images(self, dataset: str) -> dict[str, ImageRecord]:
        cursor = self.db.execute(
            "SELECT dataset, image_id, path, image_hash, width, height, file_size,"
            " file_mtime_ns, warning, error FROM images WHERE dataset=?", (dataset,))
        return {row[1]: ImageRecord(*row) for row in cursor}

    def put_images(self, records: Iterable[ImageRecord]) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO images (dataset, image_id, path, image_hash, width,"
                " height, file_size, file_mtime_ns, warning, error)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [tuple(asdict(r).values()) for r in records],
            )

    # --- results --------------------------------------------------------------------

    def finished_keys(self, fingerprint: str) -> set[tuple[float, str]]:
        """(quality, image hash) pairs measured without error for this fingerprint."""
        cursor = self.db.execute(
            "SELECT quality, image_hash FROM results"
            " WHERE codec_fingerprint=? AND error IS NULL", (fingerprint,))
        return {(float(q), h) for q, h in cursor}

    def put_result(self, row: ResultRow, run_id: int | None = None) -> None:
        """Write one measurement in its own transaction (replaces an earlier one)."""
        values = asdict(row)
        for key in ("bpp", "psnr", "ms_ssim", "ms_ssim_db", "encode_s", "decode_s"):
            values[key] = _sql_float(values[key])
        values["run_id"] = run_id
        values["created"] = _now()
        names = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        try:
            with self.db:
                self.db.execute(f"INSERT OR REPLACE INTO results ({names}) VALUES ({marks})",
                                tuple(values.values()))
        except sqlite3.OperationalError as exc:
            if "full" in str(exc):
                raise StoreError(
                    f"the disk holding {self.path} is full ({exc}). Every result written"
                    " before this one is kept; free some space and run the same command"
                    " again to resume.") from exc
            raise StoreError(f"cannot write to the results store {self.path}: {exc}") from exc

    def count_results(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def rows(self, datasets: Sequence[str] | None = None, codecs: Sequence[str] | None = None,
             fingerprints: Sequence[str] | None = None) -> list[dict]:
        """Rows of ``results_view`` (one per dataset image and measurement).

        Each filter is None for all, or the values wanted (an empty list selects none).
        """
        query = "SELECT * FROM results_view"
        clauses, params = [], []
        for column, wanted in (("dataset", datasets), ("codec", codecs),
                               ("codec_fingerprint", fingerprints)):
            if wanted is not None and len(wanted) == 0:
                return []  # asked for none
            if wanted:
                clauses.append(f"{column} IN ({', '.join('?' for _ in wanted)})")
                params.extend(wanted)
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        query += " ORDER BY codec, dataset, quality, image_id"
        cursor = self.db.execute(query, params)
        names = [d[0] for d in cursor.description]
        out = []
        for row in cursor:
            record = dict(zip(names, row))
            for key in ("ms_ssim", "ms_ssim_db", "psnr", "bpp"):
                if record[key] is None:
                    record[key] = math.nan
            out.append(record)
        return out

    # --- imported curves ------------------------------------------------------------

    def put_curve(self, name: str, dataset: str, source: str, document: dict) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO curves VALUES (?, ?, ?, ?, ?)",
                            (name, dataset, source, json.dumps(document), _now()))

    def remove_curve(self, name: str, dataset: str | None = None) -> int:
        """Delete the imported curve ``name`` (on ``dataset``, or on every one)."""
        with self.db:
            cursor = self.db.execute(
                "DELETE FROM curves WHERE name = ? AND (? IS NULL OR dataset = ?)",
                (name, dataset, dataset))
        return cursor.rowcount

    def curves(self) -> list[dict]:
        cursor = self.db.execute("SELECT name, dataset, source, document FROM curves"
                                 " ORDER BY dataset, name")
        return [{"name": n, "dataset": d, "source": s, "document": json.loads(doc)}
                for n, d, s, doc in cursor]


RESULT_FIELDS = tuple(f.name for f in fields(ResultRow))


def _load_average() -> list[float] | None:
    try:
        return list(os.getloadavg())
    except OSError:
        return None
