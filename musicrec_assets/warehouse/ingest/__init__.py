"""Ingest landing files into the warehouse, validating every row in DuckDB SQL.

Every record of a file ends up in exactly one place: its table (accepted) or
``rejected_rows`` (with a reason), so ``rows_read = rows_accepted + rows_rejected``.
One file is one transaction, recorded in the ``ingested_files`` ledger by its sha256, so the
same content dropped again (unchanged at its path, or under another name) is never ingested
twice, while a path that holds new content, even content it held before, is ingested again
(:mod:`.ledger`); a file that cannot be read (a bad gzip) is recorded there as failed, and the
files after it go on.

:func:`ingest_file` sends a file down one of two paths, the second slower and more general:

1. *The clean pass* (:mod:`.clean_pass`): most large files are well-formed and valid. One
   statement reads the file with DuckDB's ``read_json`` (fields typed as ``JSON``, so a
   string ``"4.5"`` is still told apart from the number ``4.5``), checks every record and
   inserts it; a record that fails any check aborts the statement. What is cheaper to check
   on the inserted rows (ids, keys repeated within the file) is checked there, and any doubt
   rolls the transaction back: the file then takes the general path. Ratings for stored pairs
   are resolved there too.
2. *The general path* (:mod:`.general_path`): every record is checked into ``validated``,
   and the accepted ones are upserted. The file is read typed, by ``read_json`` into a
   temporary table; when even ``read_json`` fails (a malformed line, a byte that is not
   UTF-8, a record that is not an object), it is read as text, record by record
   (:mod:`.records`), to find and quarantine the bad ones, each with its own text.

Both check records with the same SQL (:mod:`.fields`). Ratings rejected only because their
user or artist is not known yet are retried by :func:`retry_pending_ratings` once those ids
arrive, and then move from rejected to accepted. Neither creates the schema: the caller runs
:func:`musicrec_assets.warehouse.tables.ensure_schema` once before its ingest step.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime

import duckdb

from musicrec_assets.warehouse.ingest import clean_pass, general_path, ledger
from musicrec_assets.warehouse.ingest.fields import (
    DUPLICATE,
    FIELDS,
    KEYS,
    UNKNOWN_ARTIST,
    UNKNOWN_USER,
)
from musicrec_assets.warehouse.ingest.ledger import (
    IngestReport,
    already_ingested,
    not_yet_ingested,
    rows_from,
)
from musicrec_assets.warehouse.ingest.retry import retry_pending_ratings
from musicrec_assets.warehouse.landing import ChangedSinceLooked, LandingFile, UnreadableFile
from musicrec_assets.warehouse.tables import transaction

__all__ = [
    "DUPLICATE",
    "FIELDS",
    "KEYS",
    "UNKNOWN_ARTIST",
    "UNKNOWN_USER",
    "IngestReport",
    "already_ingested",
    "ingest_file",
    "not_yet_ingested",
    "retry_pending_ratings",
    "rows_from",
]


def ingest_file(con: duckdb.DuckDBPyConnection, file: LandingFile) -> IngestReport:
    """Validate and load one landing file in one transaction; a no-op if it holds content
    that is in already (`ledger.holds_ingested`: ingested, or found unreadable).

    The file is taken as ``file`` describes it (as a scan or a run's manifest found it), read
    through one open file (`LandingFile.pinned`), so the hash and the rows come from the same
    bytes; a file that differs from ``file`` when opened, or is written to while it is read,
    only gets a failure in its report, and is tried again next time, as is one that the
    system cannot open (gone, no permission). A file that cannot be read is recorded in the
    ledger with ``report.failure`` (and retried once its content changes).
    """
    con.execute("SET TimeZone = 'UTC'")
    report = IngestReport(path=file.relative_path, kind=file.kind, sha256="")
    try:
        with file.pinned() as pinned:
            _ingest_pinned(con, pinned, report)
    except ChangedSinceLooked as error:
        report.failure = str(error)
    except OSError as error:
        report.failure = f"{file.relative_path}: {error.strerror or error}"
    return report


def _ingest_pinned(con, file: LandingFile, report: IngestReport) -> None:
    """The clean pass first; the general path when it declines the file."""
    now = datetime.now(UTC).replace(tzinfo=None)
    sha256 = None
    try:
        fingerprinted = sha256 = ledger.known_sha256(con, file)
        if sha256 is None and ledger.worth_hashing_first(con, file):
            sha256 = file.sha256()  # a copy, or a touched file, is known before any read
        if sha256 is not None and ledger.holds_ingested(con, file, sha256):
            if fingerprinted is None:
                with transaction(con):
                    ledger.remember(con, file, sha256, now)
            report.skipped = True
            return
        _ingest_new(con, file, sha256, now, report)
    except UnreadableFile as error:
        report.failure = str(error)
        report.sha256 = report.sha256 or sha256 or file.sha256()
        with transaction(con):
            ledger.record(con, file, report, now)


def _ingest_new(con, file: LandingFile, sha256: str | None, now, report: IngestReport) -> None:
    """A file whose content is not in the ledger; ``sha256`` when it is known already."""
    json_format = file.json_format()
    # hashing releases the GIL, so it overlaps DuckDB's read of the same file
    with ThreadPoolExecutor(max_workers=1) as pool:
        digest = pool.submit(file.sha256) if sha256 is None else _done(sha256)
        if clean_pass.try_ingest(con, file, json_format, now, report, digest):
            return
        report.sha256 = digest.result()
    general_path.ingest(con, file, json_format, now, report)


def _done(value) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future
