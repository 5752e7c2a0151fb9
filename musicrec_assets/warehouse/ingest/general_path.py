"""The general path: every record of a file checked into ``validated``, then the accepted
ones upserted and the rejected ones quarantined, in one transaction.

The file is read typed, by ``read_json`` into a temporary table (:func:`parse_typed`); when
even ``read_json`` fails (a malformed line, a record that is not an object), it is read as
text, record by record, to find and quarantine the bad ones.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import duckdb

from musicrec_assets.warehouse.ingest import ledger
from musicrec_assets.warehouse.ingest.fields import (
    DUPLICATE,
    FIELDS,
    KEYS,
    checked,
    read_json_records,
    replaces_stored,
)
from musicrec_assets.warehouse.landing import LandingFile
from musicrec_assets.warehouse.tables import insertion_order, scalar, transaction

# a line of JSON Lines is read as one text column; no valid JSON contains these control bytes
_NO_DELIMITER = "\x1f\x1e"


def parse_typed(con, file: LandingFile, json_format: str) -> None:
    """Typed read of a well-formed file; raises duckdb.Error when any record is bad.

    Records are numbered by ``rowid`` (see :func:`validate`): a table created in one
    statement keeps the file's order, and a ``row_number()`` window would cost as much as the
    read itself.
    """
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE parsed AS FROM {read_json_records(file.kind, json_format)}",
        {"path": file.reader_path},
    )


def _records_as_text(con, file: LandingFile, json_format: str) -> None:
    """One row per record, as text, numbered by line (JSON Lines) or position (array)."""
    if json_format == "array":
        # a malformed array cannot be split into records: it raises, and the caller
        # quarantines the whole file as one record
        source = """SELECT row_number() OVER () AS record_no, json::VARCHAR AS raw
                    FROM read_json(?, format = 'array', records = false,
                                   columns = {'json': 'JSON'}, compression = 'auto')"""
    else:
        source = f"""SELECT * FROM (
                        SELECT row_number() OVER () AS record_no, line AS raw
                        FROM read_csv(?, columns = {{'line': 'VARCHAR'}},
                                      delim = '{_NO_DELIMITER}', quote = '', escape = '',
                                      header = false, auto_detect = false,
                                      strict_mode = false, null_padding = true,
                                      compression = 'auto'))
                     WHERE trim(coalesce(raw, '')) <> ''"""
    con.execute(f"CREATE OR REPLACE TEMP TABLE records AS {source}", [file.reader_path])


def _parse(con, file: LandingFile, json_format: str) -> bool:
    """Every record of the file into ``parsed``: typed at once when all are well-formed
    (then numbered by ``rowid``: returns True), else one by one from their text."""
    try:
        parse_typed(con, file, json_format)
        return True
    except duckdb.Error:
        pass
    try:
        _records_as_text(con, file, json_format)
    except duckdb.Error:
        # an array that is not valid JSON cannot be split into records: keep the whole text
        # as one record, which validation rejects as malformed
        con.execute(
            "CREATE OR REPLACE TEMP TABLE records AS SELECT 1::BIGINT AS record_no, "
            "?::VARCHAR AS raw",
            [file.read_text()],
        )
    parse_records(con, file.kind)
    return False


def parse_records(con, kind: str) -> None:
    """``records(record_no, raw)`` → ``parsed``, flagging text that is not a JSON object."""
    extracted = ", ".join(
        f"""json_extract(doc, '$."{name}"') AS "{name}" """ for name in FIELDS[kind]
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE parsed AS
        WITH documents AS (
            SELECT *, CASE WHEN json_valid(raw) THEN raw::JSON END AS doc FROM records
        )
        SELECT record_no,
               CASE WHEN doc IS NULL THEN 'malformed JSON'
                    WHEN json_type(doc) <> 'OBJECT' THEN 'not a JSON object' END AS problem,
               {extracted}, raw
        FROM documents
        """
    )


def _record_no(numbered_by_rowid: bool) -> str:
    """The number of a ``parsed`` record ``p``: its column, or (typed read) its row order."""
    return "p.rowid + 1" if numbered_by_rowid else "p.record_no"


def validate(con, kind: str, numbered_by_rowid: bool = False) -> None:
    """``parsed`` → ``validated``: typed values plus the first reason each record fails.

    ``numbered_by_rowid``: ``parsed`` has no ``record_no`` column and is in file order (the
    typed read). One pass types and checks every record; a second marks all but the newest
    record of a key that repeats within the file as duplicates.
    """
    numbering = f"{_record_no(numbered_by_rowid)} AS record_no," if numbered_by_rowid else ""
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


def _raw_record(kind: str) -> str:
    """A ``parsed`` record as text: as read (text read), or rebuilt from its fields."""
    fields = ", ".join(f'"{n}" := p."{n}"' for n in FIELDS[kind])
    return f"coalesce(p.raw, to_json(struct_pack({fields}))::VARCHAR)"


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


def _reason_counts(con) -> Counter:
    rows = con.execute(
        "SELECT reason, count(*) FROM validated WHERE reason IS NOT NULL GROUP BY reason"
    ).fetchall()
    return Counter(dict(rows))


def ingest(
    con, file: LandingFile, json_format: str, now: datetime, report: ledger.IngestReport
) -> None:
    """The general path: every record checked into ``validated``, then one transaction that
    upserts the accepted, quarantines the rejected and records the file in the ledger."""
    with insertion_order(con, preserve=True):  # records are numbered by the order they come in
        numbered_by_rowid = _parse(con, file, json_format)
    # records are numbered now: what follows may write rows in any order
    with insertion_order(con, preserve=False):
        validate(con, file.kind, numbered_by_rowid)
    reasons = _reason_counts(con)
    report.rows_read = scalar(con, "SELECT count(*) FROM validated")
    report.rows_rejected = sum(reasons.values())
    report.rows_accepted = report.rows_read - report.rows_rejected
    report.rejected_by_reason = dict(reasons)
    with insertion_order(con, preserve=False), transaction(con):
        apply_accepted(con, file.kind, file.relative_path, now)
        con.execute(
            f"""INSERT INTO rejected_rows
                SELECT ?, ?, ?, v.record_no, {_raw_record(file.kind)}, v.reason, ?
                FROM validated v JOIN parsed p ON v.record_no = {_record_no(numbered_by_rowid)}
                WHERE v.reason IS NOT NULL""",
            [file.relative_path, report.sha256, file.kind, now],
        )
        ledger.record(con, file, report, now)
