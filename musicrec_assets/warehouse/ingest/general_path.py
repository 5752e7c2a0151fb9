"""The general path: every record of a file checked into ``validated``, then the accepted
ones upserted and the rejected ones quarantined, in one transaction.

The file is read typed, by ``read_json`` into a temporary table (:func:`parse_typed`); when
even ``read_json`` fails (a malformed line, a byte that is not UTF-8, a record that is not an
object, a line too long), it is read as text, record by record (:mod:`.records`), to find
and quarantine the bad ones. Rejected records keep their own text either way.
"""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from collections.abc import Iterator
from datetime import datetime

import duckdb

from musicrec_assets.warehouse import feedback_kind
from musicrec_assets.warehouse.ingest import ledger, records
from musicrec_assets.warehouse.ingest.fields import (
    DUPLICATE,
    FIELDS,
    KEYS,
    SIDE_FIELDS,
    checked,
    decide_feedback_kind,
    parsed_text,
    read_json_records,
    replaces_stored,
    tag_rows,
)
from musicrec_assets.warehouse.landing import LandingFile
from musicrec_assets.warehouse.tables import insertion_order, scalar, transaction


def parse_typed(con, file: LandingFile, json_format: str) -> None:
    """Typed read of a well-formed file; raises duckdb.Error when any record is bad.

    Records are numbered by ``rowid`` (see :func:`validate`): a table created in one
    statement keeps the file's order, and a ``row_number()`` window would cost as much as the
    read itself.
    """
    with insertion_order(con, preserve=True):
        con.execute(
            "CREATE OR REPLACE TEMP TABLE parsed AS "
            f"FROM {read_json_records(file.kind, json_format, file.compression)}",
            {"path": file.reader_path},
        )


def parse_text(con, file: LandingFile, json_format: str) -> None:
    """Every record into ``parsed`` from its text (``raw_records``, kept for the rejected),
    numbered by its ordinal."""
    records.load_all(con, file, json_format)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE parsed AS "
        + parsed_text(file.kind, records.RAW_RECORDS, "ordinal AS record_no")
    )


def _parse(con, file: LandingFile, json_format: str) -> bool:
    """Every record of the file into ``parsed``: typed at once when all are well-formed
    (then numbered by ``rowid``: returns True), else one by one from their text."""
    try:
        parse_typed(con, file, json_format)
        return True
    except duckdb.Error:
        parse_text(con, file, json_format)
        return False


def validate(con, kind: str, numbered_by_rowid: bool = False) -> None:
    """``parsed`` → ``validated``: typed values plus the first reason each record fails.

    ``numbered_by_rowid``: ``parsed`` has no ``record_no`` column and is in file order (the
    typed read). One pass types and checks every record; a second marks all but the newest
    record of a key that repeats within the file as duplicates.
    """
    numbering = "p.rowid + 1 AS record_no," if numbered_by_rowid else ""
    con.execute(f"CREATE OR REPLACE TEMP TABLE validated AS {checked(kind, 'parsed', numbering)}")
    keys = ", ".join(f"{key}_value" for key in KEYS[kind])
    order = "timestamp_value DESC NULLS LAST," if kind == "ratings" else ""
    # keys are grouped by their hash, far cheaper than by the strings; a collision only
    # lets a few more records into the exact window, which partitions by the keys themselves
    con.execute(
        f"""
        UPDATE validated SET reason = '{DUPLICATE}'
        FROM (
            SELECT record_no FROM (
                SELECT record_no, row_number() OVER (
                    PARTITION BY {keys} ORDER BY {order} record_no DESC) AS newest_first
                FROM validated
                WHERE reason IS NULL AND hash({keys}) IN (
                    SELECT hash({keys}) FROM validated WHERE reason IS NULL
                    GROUP BY ALL HAVING count(*) > 1))
            WHERE newest_first > 1
        ) superseded
        WHERE validated.record_no = superseded.record_no
        """
    )


def apply_accepted(con, kind: str, source_file: str | None, ingested_at: datetime) -> None:
    """Upsert ``validated`` rows without a reason into the kind's table.

    Users and artists: by id, keeping known names when the new record has none.
    Ratings: by (user, artist), by :func:`fields.replaces_stored`. ``source_file`` None
    means each row keeps its own (retries).
    """
    source = "?" if source_file is not None else "v.source_file"
    params = [source_file, ingested_at] if source_file is not None else [ingested_at]
    if kind == "ratings":
        # first the stored ratings that lose to the file's, then the file's ratings whose key
        # is not stored (any still stored are newer): no copy of the file's rows in between
        con.execute(
            f"""DELETE FROM ratings USING validated v
               WHERE v.reason IS NULL
                 AND ratings.user_id = v.user_id_value AND ratings.artist_id = v.artist_id_value
                 AND {replaces_stored("v.timestamp_value", 'ratings."timestamp"')}"""
        )
        con.execute(
            f"""
            INSERT INTO ratings
            SELECT v.user_id_value, v.artist_id_value, v.rating_value, v.plays_value,
                   v.timestamp_value, {source}, ?::TIMESTAMP
            FROM validated v
            WHERE v.reason IS NULL AND NOT EXISTS (
                SELECT 1 FROM ratings r
                WHERE r.user_id = v.user_id_value AND r.artist_id = v.artist_id_value)
            """,
            params,
        )
        return

    names = [n for n in FIELDS[kind] if n != "id"]
    merged = ", ".join(f"coalesce(v.{n}_value, t.{n}) AS {n}" for n in names)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE incoming AS
        SELECT v.id_value AS id, {merged}, {source} AS source_file,
               ?::TIMESTAMP AS ingested_at
        FROM validated v LEFT JOIN {kind} t ON t.id = v.id_value
        WHERE v.reason IS NULL
        """,
        params,
    )
    con.execute(f"DELETE FROM {kind} WHERE id IN (SELECT id FROM incoming)")
    con.execute(f"INSERT INTO {kind} SELECT * FROM incoming")
    if "tags" in SIDE_FIELDS.get(kind, ()):
        # a record with tags replaces the artist's tags; one without keeps them, as names
        tagged = "reason IS NULL AND tags_value IS NOT NULL"
        con.execute(
            f"DELETE FROM artist_tags WHERE artist_id IN (SELECT id_value FROM validated "
            f"WHERE {tagged})"
        )
        con.execute("INSERT INTO artist_tags " + tag_rows("validated", tagged))


def _reason_counts(con) -> Counter:
    rows = con.execute(
        "SELECT reason, count(*) FROM validated WHERE reason IS NOT NULL GROUP BY reason"
    ).fetchall()
    return Counter(dict(rows))


def _text_of_rejected(con, file: LandingFile, json_format: str) -> bool:
    """``raw_records`` for the records a typed read rejected; False when the text reader
    does not find the same number of records as ``read_json`` did."""
    ordinals = con.execute(
        "SELECT record_no FROM validated WHERE reason IS NOT NULL ORDER BY record_no"
    ).fetchnumpy()["record_no"]
    found = records.load_chosen(con, file, json_format, ordinals)
    return found == scalar(con, "SELECT count(*) FROM validated")


def ingest(
    con, file: LandingFile, json_format: str, now: datetime, report: ledger.IngestReport
) -> None:
    """The general path: every record checked into ``validated``, then one transaction that
    upserts the accepted, quarantines the rejected with their text and records the file in
    the ledger, in DuckDB memory in proportion to the size of the file's content
    (`_memory_for`)."""
    with _memory_for(con, file):
        _ingest(con, file, json_format, now, report)


def _ingest(
    con, file: LandingFile, json_format: str, now: datetime, report: ledger.IngestReport
) -> None:
    numbered_by_rowid = _parse(con, file, json_format)
    if file.kind == "ratings" and feedback_kind.decided(con) is None:
        decide_feedback_kind(con, "parsed", f"the first ratings file, {file.relative_path}")
    # records are numbered now: what follows may write rows in any order
    with insertion_order(con, preserve=False):
        validate(con, file.kind, numbered_by_rowid)
    _drop(con, "parsed")  # what a file's ingest holds at once: its records twice, not thrice
    reasons = _reason_counts(con)
    if reasons and numbered_by_rowid and not _text_of_rejected(con, file, json_format):
        # read_json and the text reader disagree on where the records are: the text decides
        parse_text(con, file, json_format)
        with insertion_order(con, preserve=False):
            validate(con, file.kind)
        _drop(con, "parsed")
        reasons = _reason_counts(con)
    report.rows_read = scalar(con, "SELECT count(*) FROM validated")
    report.rows_rejected = sum(reasons.values())
    report.rows_accepted = report.rows_read - report.rows_rejected
    report.rejected_by_reason = dict(reasons)
    with insertion_order(con, preserve=False), transaction(con):
        apply_accepted(con, file.kind, file.relative_path, now)
        if report.rows_rejected:
            _quarantine(con, file, report, now)
        ledger.record(con, file, report, now)
    _drop(con, "validated", records.RAW_RECORDS, "incoming")


def _drop(con, *tables: str) -> None:
    """Temporary tables a file's ingest is done with: they would hold their memory until the
    connection closes, or the next file replaced them."""
    for table in tables:
        con.execute(f"DROP TABLE IF EXISTS {table}")


def _quarantine(con, file: LandingFile, report: ledger.IngestReport, now: datetime) -> None:
    (quarantined,) = con.execute(
        f"""INSERT INTO rejected_rows
            SELECT ?, ?, ?, r.record_no, r.raw, v.reason, ?
            FROM validated v JOIN {records.RAW_RECORDS} r ON r.ordinal = v.record_no
            WHERE v.reason IS NOT NULL""",
        [file.relative_path, report.sha256, file.kind, now],
    ).fetchone()
    if quarantined != report.rows_rejected:  # the transaction rolls back: nothing is lost
        raise RuntimeError(
            f"{file.relative_path}: {report.rows_rejected} records rejected but the text "
            f"of {quarantined} found"
        )


# DuckDB's memory while the general path ingests a file: in proportion to the size of its
# content (uncompressed), never to its number of records. The general path holds every record
# in temporary tables, and DuckDB keeps them in memory up to its own limit, 80% of the
# machine's: a file of a million two-byte records took over 400 MiB. Beyond this limit, DuckDB
# spills them to its temporary folder instead (beside the warehouse file:
# ``warehouse.duckdb.tmp/``, gone when it closes).
MEMORY_PER_CONTENT_BYTE = 4
MIN_MEMORY_BYTES = 128 * 2**20


@contextlib.contextmanager
def _memory_for(con, file: LandingFile) -> Iterator[None]:
    """DuckDB's memory limit lowered to `MEMORY_PER_CONTENT_BYTE` times the size of the
    file's content (`LandingFile.content_size`), at least `MIN_MEMORY_BYTES`, meanwhile, and
    back to what it was after; a lower limit that the caller set is kept."""
    previous = scalar(con, "SELECT current_setting('memory_limit')")
    limit = max(MIN_MEMORY_BYTES, MEMORY_PER_CONTENT_BYTE * file.content_size())
    if limit >= _setting_bytes(previous):
        yield
        return
    con.execute(f"SET memory_limit = '{limit} bytes'")
    try:
        yield
    finally:
        con.execute(f"SET memory_limit = '{previous}'")


_MEMORY_UNITS = {"bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "PiB": 2**50}


def _setting_bytes(setting: str) -> float:
    """A memory setting as DuckDB shows it (``18.8 GiB``) in bytes; unbounded when the form
    is not one of these."""
    found = re.fullmatch(r"([0-9.]+) ?([A-Za-z]+)", setting.strip())
    if not found or found.group(2) not in _MEMORY_UNITS:
        return float("inf")
    return float(found.group(1)) * _MEMORY_UNITS[found.group(2)]
