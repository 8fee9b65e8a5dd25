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

import contextlib
import functools
import json
import math
import os
import platform
import socket
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from harness.errors import StoreError
from harness.processes import pid_alive

SCHEMA_VERSION = 1
APPLICATION_ID = 0x4C494348  # "LICH" in the SQLite header: marks a harness store

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
    file_ctime_ns INTEGER,
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
CREATE TABLE IF NOT EXISTS artefacts (
    codec_fingerprint TEXT NOT NULL,
    quality REAL NOT NULL,
    image_hash TEXT NOT NULL,
    kind TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (codec_fingerprint, quality, image_hash, kind)
);
CREATE TABLE IF NOT EXISTS diagnostics (
    kind TEXT NOT NULL,
    codec TEXT NOT NULL,
    codec_fingerprint TEXT NOT NULL,
    quality REAL NOT NULL,
    subject TEXT NOT NULL,
    document TEXT NOT NULL,
    measured TEXT NOT NULL,
    PRIMARY KEY (kind, codec_fingerprint, quality, subject)
);
CREATE VIEW IF NOT EXISTS results_view AS
    SELECT r.codec, r.codec_fingerprint, r.quality, i.dataset, i.image_id, r.image_hash,
           r.width, r.height, r.bytes, r.bpp, r.psnr, r.ms_ssim, r.ms_ssim_db,
           r.encode_s, r.decode_s, r.error, r.note, r.run_id, r.payload_bytes
    FROM results r JOIN images i ON i.image_hash = r.image_hash;
"""
VIEW_COLUMNS = ("codec", "codec_fingerprint", "quality", "dataset", "image_id", "image_hash",
                "width", "height", "bytes", "bpp", "psnr", "ms_ssim", "ms_ssim_db", "encode_s",
                "decode_s", "error", "note", "run_id", "payload_bytes")
# Metrics other than the results table's PSNR and MS-SSIM (harness.metrics.registry), one
# row per result and metric, so that a new metric never changes the results table. Stores
# written before it get it when next opened for writing; read-only ones read it as empty.
_SCHEMA += """
CREATE TABLE IF NOT EXISTS metrics (
    codec_fingerprint TEXT NOT NULL,
    quality REAL NOT NULL,
    image_hash TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL,
    metric_fingerprint TEXT NOT NULL,
    PRIMARY KEY (codec_fingerprint, quality, image_hash, metric)
);
"""
# tables added after schema 1 came out (``--save``'s files; verify's and profile's
# findings; metrics besides PSNR and MS-SSIM)
_LATER_TABLES = ("artefacts", "diagnostics", "metrics")


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
    # kind -> bytes kept with ``--save`` (harness.artefacts), from the worker; not a column
    artefacts: dict | None = field(default=None, repr=False)
    # (worker pid, "codec q=Q" when this task loaded that model there); not a column
    worker: tuple | None = field(default=None, repr=False)
    # metric name -> (value, metric fingerprint): the ``metrics`` table's rows; not a column
    metrics: dict | None = field(default=None, repr=False)


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
    file_ctime_ns: int | None = None  # changes with any write or utime: catches cp -p


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _sql_float(value: float | None) -> float | None:
    # SQLite stores NaN as NULL; keep that explicit so readers map NULL back to NaN.
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


class ResultsStore:
    """An SQLite results file. Safe to open again while a killed run left it behind.

    ``readonly`` opens it for reading only (report, bd, export): nothing in the file
    changes, and a store on read-only media or without write permission works. A file
    is used only once it is recognised as a harness store (its ``application_id``, or
    the ``meta`` table of stores written before it was set); any other SQLite file is
    refused before anything in it is touched.
    """

    def __init__(self, path: str | os.PathLike, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self.db: sqlite3.Connection | None = None
        try:
            self._open()
        except BaseException:
            if self.db is not None:
                self.db.close()
            raise

    def _open(self) -> None:
        readonly = self.readonly
        try:
            if readonly:
                self.db = _connect_readonly(self.path)
                if _kind(self.db) != "harness":
                    raise StoreError(self._not_ours())
                self._check_schema_version()
                self._shadow_missing_columns()
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.db = sqlite3.connect(self.path, timeout=30)
                self._create_or_check()
                self._mark_killed_runs()
        except sqlite3.DatabaseError as exc:
            if _is_readonly_error(exc):
                raise StoreError(
                    f"the results store {self.path} is read-only ({exc}); this command writes"
                    " results into it. Pass a writable file with --store (reading commands"
                    " such as report, bd and export work on a read-only store).") from exc
            raise StoreError(
                f"cannot use {self.path} as a results store: {exc}. Pass another file"
                " with --store, or move this one away if it is damaged.") from exc
        except OSError as exc:
            raise StoreError(f"cannot create the results store {self.path}: {exc}") from exc

    def _not_ours(self) -> str:
        return (f"{self.path} is an SQLite file but not a harness results store; it was not"
                " changed. Pass another file with --store.")

    def _create_or_check(self) -> None:
        """Recognise the file, then create the schema in one transaction.

        BEGIN IMMEDIATE takes the write lock before looking, so processes opening a
        fresh store at the same moment create it one after the other.
        """
        if _kind(self.db) == "foreign":  # looked at before any write
            raise StoreError(self._not_ours())
        with self.write_lock():
            kind = _kind(self.db)  # again: another process may have created it meanwhile
            if kind == "foreign":
                raise StoreError(self._not_ours())
            if kind == "harness":
                self._check_schema_version()
                self._add_missing_columns()
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self.db.execute(statement)
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                            (str(SCHEMA_VERSION),))
            if self.db.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
                self.db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        self._use_wal()
        self.db.execute("PRAGMA synchronous=NORMAL")

    @contextlib.contextmanager
    def write_lock(self):
        """One transaction holding the store's write lock from its start: other writers wait.

        BEGIN IMMEDIATE takes the lock before the first read (a plain BEGIN would read
        first and could fail to upgrade); statements inside run without implicit commits.
        """
        self.db.isolation_level = None
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        finally:
            self.db.isolation_level = ""

    def _use_wal(self) -> None:
        """Switch to the WAL journal (once per store; it is kept in the file).

        Switching takes an exclusive lock without waiting for it, so processes
        opening a fresh store together retry for a while instead of failing.
        """
        deadline = time.monotonic() + 30
        while self.db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            try:
                self.db.execute("PRAGMA journal_mode=WAL").fetchone()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def _add_missing_columns(self) -> None:
        """Bring a store written before ``payload_bytes`` or ``file_ctime_ns`` up to date."""
        if "payload_bytes" not in _columns(self.db, "results"):
            self.db.execute("ALTER TABLE results ADD COLUMN payload_bytes INTEGER")
            self.db.execute("DROP VIEW IF EXISTS results_view")
        images = _columns(self.db, "images")
        if images and "file_ctime_ns" not in images:
            self.db.execute("ALTER TABLE images ADD COLUMN file_ctime_ns INTEGER")

    def _shadow_missing_columns(self) -> None:
        """Read an old store as if it were up to date, without changing it.

        A TEMP view lives in this connection only and is found before the file's own.
        """
        for name in _LATER_TABLES:  # a store written before the table existed: empty
            if not _columns(self.db, name):
                table = _SCHEMA[_SCHEMA.index(f"CREATE TABLE IF NOT EXISTS {name} "):]
                table = table[:table.index(";")].replace("IF NOT EXISTS", "")
                self.db.execute(table.replace("CREATE TABLE", "CREATE TEMP TABLE"))
        if "payload_bytes" not in _columns(self.db, "results"):
            view = _SCHEMA[_SCHEMA.index("CREATE VIEW"):].rstrip().rstrip(";")
            view = view.replace("CREATE VIEW IF NOT EXISTS", "CREATE TEMP VIEW")
            self.db.execute(view.replace("r.payload_bytes", "NULL AS payload_bytes"))

    def _check_schema_version(self) -> None:
        found = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if found is not None and str(found[0]) != str(SCHEMA_VERSION):
            raise StoreError(
                f"{self.path} has store schema {found[0]}; this harness reads schema"
                f" {SCHEMA_VERSION}. Use a new --store file."
            )

    def _mark_killed_runs(self) -> None:
        """Runs left 'running' by a process that is gone are marked 'killed'."""
        killed = [r["run_id"] for r in self._stored_runs() if _run_was_killed(r)]
        if killed:
            with self.db:
                self.db.executemany("UPDATE runs SET status='killed' WHERE run_id=?"
                                    " AND status='running'", [(i,) for i in killed])

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
                "load_average": _load_average(), "pid": os.getpid()}
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
        """Every run; one whose process is gone without ending it reads as 'killed'."""
        runs = self._stored_runs()
        for run in runs:
            if _run_was_killed(run):
                run["status"] = "killed"
        return runs

    def _stored_runs(self) -> list[dict]:
        cursor = self.db.execute("SELECT * FROM runs ORDER BY run_id")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor]

    # --- images ---------------------------------------------------------------------

    def known_images(self, dataset: str) -> dict[str, ImageRecord]:
        cursor = self.db.execute(
            "SELECT dataset, image_id, path, image_hash, width, height, file_size,"
            " file_mtime_ns, warning, error, file_ctime_ns FROM images WHERE dataset=?",
            (dataset,))
        return {row[1]: ImageRecord(*row) for row in cursor}

    def put_images(self, records: Iterable[ImageRecord]) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO images (dataset, image_id, path, image_hash, width,"
                " height, file_size, file_mtime_ns, warning, error, file_ctime_ns)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [tuple(asdict(r).values()) for r in records],
            )

    def keep_images(self, dataset: str, image_ids: Iterable[str]) -> None:
        """Make ``dataset`` hold exactly ``image_ids``: files gone from it leave its means."""
        keep = set(image_ids)
        gone = [(dataset, i) for i in self.known_images(dataset) if i not in keep]
        if gone:
            with self.db:
                self.db.executemany("DELETE FROM images WHERE dataset=? AND image_id=?", gone)

    # --- results --------------------------------------------------------------------

    def finished_keys(self, fingerprint: str) -> set[tuple[float, str]]:
        """(quality, image hash) pairs measured without error for this fingerprint."""
        cursor = self.db.execute(
            "SELECT quality, image_hash FROM results"
            " WHERE codec_fingerprint=? AND error IS NULL", (fingerprint,))
        return {(float(q), h) for q, h in cursor}

    def metric_fingerprints(self, fingerprint: str) -> dict[tuple[float, str], dict[str, str]]:
        """(quality, image hash) -> {metric: metric fingerprint} stored for this codec
        fingerprint (the ``metrics`` table)."""
        found: dict[tuple[float, str], dict[str, str]] = {}
        for quality, image_hash, metric, metric_fingerprint in self.db.execute(
                "SELECT quality, image_hash, metric, metric_fingerprint FROM metrics"
                " WHERE codec_fingerprint=?", (fingerprint,)):
            found.setdefault((float(quality), image_hash), {})[metric] = metric_fingerprint
        return found

    def put_metrics(self, key: tuple[str, float, str],
                    measured: dict[str, tuple[float, str]]) -> None:
        """Add (or replace) metric values of the stored result ``key`` (codec fingerprint,
        quality, image hash), its other metrics kept: values computed later from its kept
        reconstruction (``harness metrics add``)."""
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO metrics VALUES (?, ?, ?, ?, ?, ?)",
                                [(*key, name, _sql_float(value), metric_fingerprint)
                                 for name, (value, metric_fingerprint) in measured.items()])

    def put_result(self, row: ResultRow, run_id: int | None = None,
                   artefacts: dict[str, str] | None = None) -> None:
        """Write one measurement in its own transaction (replaces an earlier one).

        ``artefacts``: kind -> hash of the files kept for it (written before the row).
        """
        values = {name: value for name, value in asdict(row).items() if name in RESULT_FIELDS}
        measured = row.metrics or {}
        row_key = (row.codec_fingerprint, row.quality, row.image_hash)
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
                self.db.execute("DELETE FROM artefacts WHERE codec_fingerprint=? AND quality=?"
                                " AND image_hash=?", row_key)
                self.db.executemany("INSERT INTO artefacts VALUES (?, ?, ?, ?, ?)",
                                    [(*row_key, k, h) for k, h in (artefacts or {}).items()])
                # values of an earlier measurement belong to its reconstruction: replaced
                self.db.execute("DELETE FROM metrics WHERE codec_fingerprint=? AND quality=?"
                                " AND image_hash=?", row_key)
                self.db.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?)",
                                    [(*row_key, name, _sql_float(value), metric_fingerprint)
                                     for name, (value, metric_fingerprint) in measured.items()])
        except sqlite3.OperationalError as exc:
            if "full" in str(exc):
                raise StoreError(
                    f"the disk holding {self.path} is full ({exc}). Every result written"
                    " before this one is kept; free some space and run the same command"
                    " again to resume.") from exc
            raise StoreError(f"cannot write to the results store {self.path}: {exc}") from exc

    def timings(self) -> list[tuple[str, float, float, int]]:
        """(codec, quality, encode + decode seconds, pixels) of every row without error."""
        return self.db.execute(
            "SELECT codec, quality, encode_s + decode_s, width * height FROM results WHERE"
            " error IS NULL AND encode_s IS NOT NULL AND decode_s IS NOT NULL AND"
            " width * height > 0").fetchall()

    def count_results(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def rows(self, datasets: Sequence[str] | None = None, codecs: Sequence[str] | None = None,
             fingerprints: Sequence[str] | None = None) -> list[dict]:
        """Rows of ``results_view`` (one per dataset image and measurement), with each
        value of the ``metrics`` table as a column named by its metric (``psnr-y``: NaN
        where a row lacks it).

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
        self._add_metrics(out)
        return out

    def _add_metrics(self, records: list[dict]) -> None:
        by_key: dict[tuple, list[dict]] = {}
        for record in records:
            key = (record["codec_fingerprint"], float(record["quality"]), record["image_hash"])
            by_key.setdefault(key, []).append(record)
        fingerprints = sorted({key[0] for key in by_key})
        names: set[str] = set()
        for start in range(0, len(fingerprints), 500):  # SQLite's limit on parameters
            chunk = fingerprints[start:start + 500]
            for fingerprint, quality, image_hash, metric, value in self.db.execute(
                    "SELECT codec_fingerprint, quality, image_hash, metric, value FROM metrics"
                    f" WHERE codec_fingerprint IN ({', '.join('?' for _ in chunk)})", chunk):
                names.add(metric)
                for record in by_key.get((fingerprint, float(quality), image_hash), ()):
                    record[metric] = math.nan if value is None else value
        for record in records:
            for name in names - record.keys():
                record[name] = math.nan

    # --- saved artefacts (harness.artefacts) --------------------------------------------

    def artefacts(self, fingerprints: Sequence[str] | None = None
                  ) -> dict[tuple[str, float, str], dict[str, str]]:
        """(fingerprint, quality, image hash) -> {kind: sha256} of the rows' kept files."""
        query = "SELECT codec_fingerprint, quality, image_hash, kind, sha256 FROM artefacts"
        if fingerprints is not None:
            query += f" WHERE codec_fingerprint IN ({', '.join('?' for _ in fingerprints)})"
        found: dict[tuple[str, float, str], dict[str, str]] = {}
        for fingerprint, quality, image_hash, kind, sha256 in self.db.execute(
                query, tuple(fingerprints or ())):
            found.setdefault((fingerprint, float(quality), image_hash), {})[kind] = sha256
        return found

    def artefacts_in_use(self) -> set[tuple[str, str]]:
        """(sha256, kind) of every file a result row points to."""
        return set(self.db.execute("SELECT DISTINCT sha256, kind FROM artefacts"))

    def drop_dangling_artefacts(self) -> int:
        """Forget the artefacts of rows no longer in ``results`` (deleted by hand, say)."""
        cursor = self.db.execute(
            "DELETE FROM artefacts WHERE NOT EXISTS (SELECT 1 FROM results r WHERE"
            " r.codec_fingerprint = artefacts.codec_fingerprint AND r.quality ="
            " artefacts.quality AND r.image_hash = artefacts.image_hash)")
        return cursor.rowcount

    # --- findings about a codec apart from RD rows (verify --cross, profile) -----------

    def put_diagnostic(self, kind: str, codec: str, fingerprint: str, quality: float,
                       subject: str, document: dict) -> None:
        """Keep the latest ``kind`` finding (e.g. ``portability``, ``profile``) about a codec
        at a quality on ``subject`` (what it was measured on: an image hash, a size)."""
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO diagnostics VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (kind, codec, fingerprint, float(quality), subject,
                             json.dumps(document, sort_keys=True), _now()))

    def diagnostics(self, kind: str | None = None) -> list[dict]:
        cursor = self.db.execute(
            "SELECT kind, codec, codec_fingerprint, quality, subject, document, measured FROM"
            " diagnostics WHERE ? IS NULL OR kind = ? ORDER BY kind, codec, quality, subject",
            (kind, kind))
        return [{"kind": k, "codec": c, "codec_fingerprint": f, "quality": q, "subject": s,
                 "document": json.loads(d), "measured": m} for k, c, f, q, s, d, m in cursor]

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


def _guarded(method):
    """Turn SQLite's errors in ``method`` (a damaged file, say) into a StoreError."""
    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"the results store {self.path} cannot be used: {exc}. If the file is"
                " damaged, restore it from a copy or pass another file with --store.") from exc
    return guarded


# every public method of the store, including ones added later
for _name, _method in list(vars(ResultsStore).items()):
    if callable(_method) and not _name.startswith("_"):
        setattr(ResultsStore, _name, _guarded(_method))


RESULT_FIELDS = tuple(f.name for f in fields(ResultRow)  # the columns
                      if f.name not in ("artefacts", "worker", "metrics"))


def _kind(db: sqlite3.Connection) -> str:
    """'harness', 'empty' (a new file) or 'foreign', read without writing anything."""
    application_id = db.execute("PRAGMA application_id").fetchone()[0]
    if application_id == APPLICATION_ID:
        return "harness"
    names = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    if not names and application_id == 0:
        return "empty"
    if application_id == 0 and {"meta", "runs", "images", "results"} <= names:
        try:  # a store written before the application_id was set
            db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchall()
            return "harness"
        except sqlite3.OperationalError:
            pass
    return "foreign"


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """Open ``path`` so that nothing can be written through the connection.

    A WAL store whose folder cannot be written (read-only media) cannot get the
    shared-memory file a WAL reader needs; it is then read as an immutable file.
    """
    if not path.is_file():
        raise StoreError(f"no results store at {path}; run `harness run` first or pass --store")
    uri = "file:" + quote(str(path.absolute()))
    db = sqlite3.connect(uri + "?mode=ro", uri=True, timeout=30)
    try:
        db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError:
        if os.access(path.parent, os.W_OK):
            raise
        db.close()
        db = sqlite3.connect(uri + "?immutable=1", uri=True)
    return db


def _is_readonly_error(exc: sqlite3.DatabaseError) -> bool:
    return "readonly" in str(exc) or getattr(exc, "sqlite_errorname", "") == "SQLITE_READONLY"


def _run_was_killed(run: dict) -> bool:
    """A run still 'running' whose process (on this host) no longer exists."""
    if run.get("status") != "running":
        return False
    try:
        host = json.loads(run.get("host") or "{}")
    except ValueError:
        return False
    pid = host.get("pid") if isinstance(host, dict) else None
    return (isinstance(pid, int) and host.get("hostname") == socket.gethostname()
            and not pid_alive(pid))


def _load_average() -> list[float] | None:
    try:
        return list(os.getloadavg())
    except OSError:
        return None
