"""Ingest landing files into the warehouse, validating every row in DuckDB SQL.

Every record of a file ends up in exactly one place: its table (accepted) or
``rejected_rows`` (with a reason), so ``rows_read = rows_accepted + rows_rejected``.
One file is one transaction, recorded in the ``ingested_files`` ledger by its sha256, so the
same content is never ingested twice.

Files take one of three paths, each slower and more general than the one before:

1. *Clean*: most large files are well-formed and valid. One statement reads the file with
   DuckDB's ``read_json`` (fields typed as ``JSON``, so a string ``"4.5"`` is still told
   apart from the number ``4.5``), checks every record and inserts it; a record that fails
   any check aborts the statement. What is cheaper to check on the inserted rows (ids, keys
   repeated within the file) is checked there, and any doubt rolls the transaction back: the
   file then takes path 2. Ratings for stored pairs are resolved there too.
2. *Fast*: ``read_json`` into a temporary table, then every record is checked
   (``validated``), and the accepted ones are upserted.
3. *Careful*: when even ``read_json`` fails (a malformed line, a record that is not an
   object), the file is read record by record as text to find and quarantine the bad ones.

Ratings rejected only because their user or artist is not known yet are retried by
:func:`retry_pending_ratings` once those ids arrive, and then move from rejected to accepted.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb

from musicrec_assets.warehouse.landing import LandingFile
from musicrec_assets.warehouse.tables import ensure_schema, scalar, transaction

FIELDS = {
    "users": ("id", "first_name", "last_name"),
    "artists": ("id", "name"),
    "ratings": ("user_id", "artist_id", "rating", "plays", "timestamp"),
}
KEYS = {"users": ("id",), "artists": ("id",), "ratings": ("user_id", "artist_id")}

UNKNOWN_USER = "unknown user_id"
UNKNOWN_ARTIST = "unknown artist_id"
DUPLICATE = "duplicate key within file"
# a line of JSON Lines is read as one text column; no valid JSON contains these control bytes
_NO_DELIMITER = "\x1f\x1e"


@dataclass
class IngestReport:
    path: str
    kind: str
    sha256: str
    rows_read: int = 0
    rows_accepted: int = 0
    rows_rejected: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    skipped: bool = False  # same content was ingested before


def _json_columns(kind: str, ids_as_text: bool) -> str:
    def column_type(name: str) -> str:
        return "VARCHAR" if ids_as_text and name in KEYS[kind] else "JSON"

    return "{" + ", ".join(f"'{name}': '{column_type(name)}'" for name in FIELDS[kind]) + "}"


def _read_json(kind: str, json_format: str, ids_as_text: bool = False) -> str:
    """The records of a landing file (its path the query's ``$path`` parameter) as
    :func:`_checked` takes them, read by ``read_json`` with every field as JSON.

    ``ids_as_text``: the key fields (ids) typed VARCHAR instead; see :func:`_insert_clean`.
    """
    fields = ", ".join(f'"{n}"' for n in FIELDS[kind])
    columns = _json_columns(kind, ids_as_text)
    return f"""(SELECT NULL::VARCHAR AS problem, {fields}, NULL::VARCHAR AS raw
               FROM read_json($path, format = '{json_format}', columns = {columns},
                              compression = 'auto'))"""


def _parse_fast(con, file: LandingFile, json_format: str) -> None:
    """Typed read of a well-formed file; raises duckdb.Error when any record is bad.

    Records are numbered by ``rowid`` (see :func:`_validate`): a table created in one
    statement keeps the file's order, and a ``row_number()`` window would cost as much as the
    read itself.
    """
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE parsed AS FROM {_read_json(file.kind, json_format)}",
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
        _parse_fast(con, file, json_format)
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
    _parse_records(con, file.kind)
    return False


def _parse_records(con, kind: str) -> None:
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


# Typed values are read off each field's JSON text (cheap string tests) rather than by
# re-parsing it: a JSON string starts with a quote, a number casts to DOUBLE, absent is NULL.
def _text(column: str) -> str:
    return f"nullif({column}::VARCHAR, 'null')"


def _string(column: str) -> str:
    return f"""CASE WHEN starts_with({column}::VARCHAR, '"') THEN {column} ->> '$' END"""


def _number(column: str) -> str:
    # a JSON string's text keeps its quotes, which no number cast accepts
    return f"TRY_CAST({column}::VARCHAR AS DOUBLE)"


def _identifier(column: str) -> str:
    """Ids are JSON strings, or integers taken as their decimal text."""
    text = f"{column}::VARCHAR"
    return f"""CASE WHEN starts_with({text}, '"') THEN {column} ->> '$'
                    WHEN regexp_full_match({text}, '-?[0-9]+') THEN {text} END"""


def _id_checks(name: str) -> list[str]:
    # a regular expression, not trim(): trim copies every id. Only ids that start with a
    # control character or a space (codepoint ≤ 32, every one that \s matches) pay for it.
    value = f"{name}_value"
    blank = f"ascii({value}) <= 32 AND regexp_full_match({value}, '\\s*')"
    return [
        f"WHEN {name}_text IS NULL OR ({blank}) THEN 'missing or empty {name}'",
        f"WHEN {name}_value IS NULL THEN 'wrong type: {name} must be a string'",
    ]


def _checked(kind: str, source: str, record_no: str = "", clean_pass: bool = False) -> str:
    """A query of ``source``'s records (``problem``, the fields as JSON, ``raw``): each
    field's typed value (``<field>_value``) and the first reason the record fails, if any.

    ``record_no``: a select-list item that numbers the records, when ``source`` has none.
    ``clean_pass``: the form :func:`_insert_clean` uses: ``source`` has its ids as VARCHAR
    (see :func:`_read_json`), taken as they are, and only checked for presence here.
    """

    def text(name: str) -> str:
        # read_json gives JSON null as SQL NULL; only the careful path's json_extract gives 'null'
        return f"p.{name}" if clean_pass else _text(f"p.{name}")

    def identifier(name: str) -> str:
        return f"p.{name}" if clean_pass else _identifier(f"p.{name}")

    texts = ", ".join(f'{text(n)} AS "{n}_text"' for n in FIELDS[kind])
    if kind == "ratings":
        values = f"""
            {identifier("user_id")} AS user_id_value,
            {identifier("artist_id")} AS artist_id_value,
            {_number("p.rating")} AS rating_value,
            {_number("p.plays")} AS plays_number,
            TRY_CAST(plays_number AS BIGINT) AS plays_value,
            {_number("p.timestamp")} AS timestamp_number,
            CASE WHEN timestamp_number IS NOT NULL
                     THEN make_timestamp(TRY_CAST(timestamp_number * 1e6 AS BIGINT))
                 ELSE TRY_CAST({_string("p.timestamp")} AS TIMESTAMPTZ)::TIMESTAMP
            END AS timestamp_value"""
        checks = [
            *_id_checks("user_id"),
            *_id_checks("artist_id"),
            "WHEN rating_text IS NOT NULL AND rating_value IS NULL "
            "THEN 'wrong type: rating must be a number'",
            "WHEN rating_value NOT BETWEEN 0.5 AND 5.0 THEN 'rating outside 0.5-5.0'",
            "WHEN plays_text IS NOT NULL AND (plays_number IS NULL "
            "OR plays_number <> floor(plays_number)) THEN 'wrong type: plays must be an integer'",
            "WHEN plays_number < 0 THEN 'negative plays'",
            "WHEN plays_text IS NOT NULL AND plays_value IS NULL THEN 'plays too large'",
            "WHEN rating_value IS NULL AND plays_value IS NULL THEN 'missing rating and plays'",
            "WHEN timestamp_text IS NOT NULL AND timestamp_value IS NULL "
            "THEN 'wrong type: timestamp must be epoch seconds or ISO 8601'",
        ]
        if not clean_pass:
            checks += [
                # IN builds its hash table on the known ids, whatever the optimizer guesses
                # of the file's size
                f"WHEN user_id_value NOT IN (SELECT id FROM users) THEN '{UNKNOWN_USER}'",
                f"WHEN artist_id_value NOT IN (SELECT id FROM artists) THEN '{UNKNOWN_ARTIST}'",
            ]
    else:
        names = [n for n in FIELDS[kind] if n != "id"]
        values = ", ".join(
            [f"{identifier('id')} AS id_value"]
            + [f"{_string(f'p.{n}')} AS {n}_value" for n in names]
        )
        checks = _id_checks("id") + [
            f"WHEN {n}_text IS NOT NULL AND {n}_value IS NULL "
            f"THEN 'wrong type: {n} must be a string'"
            for n in names
        ]

    # only typed values go on: the JSON fields are read again for rejected rows alone
    dropped = ", ".join(
        ["raw", "problem"]
        + [f'"{n}"' for n in FIELDS[kind]]
        + [f'"{n}_text"' for n in FIELDS[kind]]
    )
    return f"""
        WITH typed AS (SELECT {record_no} p.*, {texts}, {values} FROM {source} p)
        SELECT * EXCLUDE ({dropped}),
               CASE WHEN problem IS NOT NULL THEN problem {" ".join(checks)} END AS reason
        FROM typed
        """


def _record_no(numbered_by_rowid: bool) -> str:
    """The number of a ``parsed`` record ``p``: its column, or (fast path) its row order."""
    return "p.rowid + 1" if numbered_by_rowid else "p.record_no"


def _validate(con, kind: str, numbered_by_rowid: bool = False) -> None:
    """``parsed`` → ``validated``: typed values plus the first reason each record fails.

    ``numbered_by_rowid``: ``parsed`` has no ``record_no`` column and is in file order (the
    fast path). One pass types and checks every record; a second marks all but the newest
    record of a key that repeats within the file as duplicates.
    """
    numbering = f"{_record_no(numbered_by_rowid)} AS record_no," if numbered_by_rowid else ""
    con.execute(f"CREATE OR REPLACE TEMP TABLE validated AS {_checked(kind, 'parsed', numbering)}")
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


@contextmanager
def insertion_order(con, preserve: bool):
    """Whether DuckDB keeps rows in the order it reads them, for this connection only, and
    back to what it was after. Without order it inserts from every thread (a third faster);
    the general path keeps order while it reads and numbers records."""
    previous = scalar(con, "SELECT current_setting('preserve_insertion_order')")
    con.execute(f"SET SESSION preserve_insertion_order = {bool(preserve)}")
    try:
        yield
    finally:
        con.execute(f"SET SESSION preserve_insertion_order = {bool(previous)}")


class _NotClean(Exception):
    """The clean path cannot take the file: a key repeats within it, an id may be of the
    wrong type or is not known, or its content was ingested before."""


def _insert_clean(con, file: LandingFile, json_format: str, ingested_at: datetime) -> int:
    """Path 1: insert a file whose every record passes; returns the number of records.
    Raises duckdb.Error or _NotClean otherwise (the caller's transaction then rolls back).

    A rating for a stored pair is resolved after the insert (:func:`_keep_newest_ratings`);
    a stored user or artist, whose names merge, is left to the general path.

    Ids are read as VARCHAR, which spares unquoting each one, and checked on the inserted
    rows, where they come back dictionary-encoded and each distinct id costs once:

    - an id that is not known (ratings);
    - an id whose text is itself JSON: VARCHAR gives a string's content but any other
      value's JSON text, so ``1.5``, ``true`` or ``[1]`` may have been the wrong type. Only
      the general path, which reads ids as JSON, can tell; integers mean the same either way.

    Keys repeated within the file are checked on the inserted rows too.
    """
    kind = file.kind
    keys = KEYS[kind]
    new_id = "" if kind == "ratings" else f"AND id_value NOT IN (SELECT id FROM {kind})"
    params = {"source_file": file.relative_path, "ingested_at": ingested_at}
    insert = f"""
        INSERT INTO {kind}
        SELECT {", ".join(f"{n}_value" for n in FIELDS[kind])}, $source_file,
               $ingested_at::TIMESTAMP
        FROM ({_checked(kind, _read_json(kind, json_format, ids_as_text=True), clean_pass=True)})
        WHERE CASE WHEN reason IS NULL {new_id} THEN true ELSE error('not clean') END
        """
    inserted = con.execute(insert, {"path": file.reader_path, **params}).fetchone()[0]
    new_rows = f"(FROM {kind} WHERE source_file = $source_file AND ingested_at = $ingested_at)"
    # keys are grouped by their hash: a collision only sends the file to the general path
    objections = {
        "a key repeats within the file": f"""SELECT 1 FROM {new_rows}
                                              GROUP BY hash({", ".join(keys)})
                                              HAVING count(*) > 1""",
    }
    known_in = {"user_id": "users", "artist_id": "artists"}
    for key in keys:
        unknown = f"OR id NOT IN (SELECT id FROM {known_in[key]})" if key in known_in else ""
        objections[f"a {key} may not be a string, or is not known"] = f"""
            SELECT 1 FROM (SELECT DISTINCT {key} AS id FROM {new_rows})
            WHERE (json_valid(id) AND NOT regexp_full_match(id, '-?[0-9]+')) {unknown}"""
    for objection, query in objections.items():
        if scalar(con, f"SELECT EXISTS ({query})", params):
            raise _NotClean(f"{file.relative_path}: {objection}")
    if kind == "ratings":
        _keep_newest_ratings(con, params)
    return inserted


def _keep_newest_ratings(con, params: dict) -> None:
    """Of each pair that the clean pass's insert stored twice, delete the rating that loses
    by :func:`_apply_accepted`'s rule: the newer timestamp wins, and a tie, or no timestamps,
    goes to the new file. ``params``: the new rows' ``source_file`` and ``ingested_at``."""

    def is_new(table: str) -> str:
        return f"{table}.source_file = $source_file AND {table}.ingested_at = $ingested_at"

    # DuckDB cannot tell that nothing was stored before (the first load) and would hash
    # every new rating to find out
    if not scalar(con, f"SELECT EXISTS (FROM ratings WHERE NOT ({is_new('ratings')}))", params):
        return
    same_pair = "ratings.user_id = other.user_id AND ratings.artist_id = other.artist_id"
    con.execute(
        f"""DELETE FROM ratings USING (FROM ratings WHERE {is_new("ratings")}) other
            WHERE NOT ({is_new("ratings")}) AND {same_pair}
              AND coalesce(other."timestamp", '-infinity'::TIMESTAMP)
                  >= coalesce(ratings."timestamp", '-infinity'::TIMESTAMP)""",
        params,
    )
    # what is left of a stored pair beat the new rating
    con.execute(
        f"""DELETE FROM ratings USING (FROM ratings WHERE NOT ({is_new("ratings")})) other
            WHERE {is_new("ratings")} AND {same_pair}""",
        params,
    )


def _raw_record(kind: str) -> str:
    """A ``parsed`` record as text: as read (careful path), or rebuilt from its fields."""
    fields = ", ".join(f'"{n}" := p."{n}"' for n in FIELDS[kind])
    return f"coalesce(p.raw, to_json(struct_pack({fields}))::VARCHAR)"


def _apply_accepted(con, kind: str, source_file: str | None, ingested_at: datetime) -> None:
    """Upsert ``validated`` rows without a reason into the kind's table.

    Users and artists: by id, keeping known names when the new record has none.
    Ratings: by (user, artist); the newer timestamp wins, a tie or missing timestamps go to
    the later file. ``source_file`` None means each row keeps its own (retries).
    """
    source = "?" if source_file is not None else "v.source_file"
    params = [source_file, ingested_at] if source_file is not None else [ingested_at]
    if kind == "ratings":
        # first the stored ratings that lose to the file's, then the file's ratings whose key
        # is not stored (any still stored are newer): no copy of the file's rows in between
        con.execute(
            """DELETE FROM ratings USING validated v
               WHERE v.reason IS NULL
                 AND ratings.user_id = v.user_id_value AND ratings.artist_id = v.artist_id_value
                 AND coalesce(v.timestamp_value, '-infinity'::TIMESTAMP)
                     >= coalesce(ratings."timestamp", '-infinity'::TIMESTAMP)"""
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


def already_ingested(con, file: LandingFile) -> bool:
    """Known by path, size and mtime: the cheap test, before the content's hash."""
    query = "SELECT count(*) FROM ingested_files WHERE path = ? AND size_bytes = ? AND mtime_ns = ?"
    return scalar(con, query, [file.relative_path, file.size_bytes, file.mtime_ns]) > 0


def _content_seen(con, kind: str, sha256: str) -> bool:
    query = "SELECT count(*) FROM ingested_files WHERE sha256 = ? AND kind = ?"
    return scalar(con, query, [sha256, kind]) > 0


def _record_in_ledger(con, file: LandingFile, report: IngestReport, now: datetime) -> None:
    con.execute(
        "INSERT INTO ingested_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            file.relative_path,
            report.sha256,
            file.kind,
            file.size_bytes,
            file.mtime_ns,
            report.rows_read,
            report.rows_accepted,
            report.rows_rejected,
            now,
        ],
    )


def ingest_file(con: duckdb.DuckDBPyConnection, file: LandingFile) -> IngestReport:
    """Validate and load one landing file in one transaction; a no-op if already ingested."""
    ensure_schema(con)
    con.execute("SET TimeZone = 'UTC'")
    report = IngestReport(path=file.relative_path, kind=file.kind, sha256="")
    if already_ingested(con, file):
        report.skipped = True
        return report

    json_format = "array" if file.is_json_array() else "newline_delimited"
    now = datetime.now(UTC).replace(tzinfo=None)
    # hashing releases the GIL, so it overlaps DuckDB's read of the same file
    with ThreadPoolExecutor(max_workers=1) as pool:
        digest = pool.submit(file.sha256)
        if _ingest_clean(con, file, json_format, now, report, digest):
            return report
        report.sha256 = digest.result()
    if _content_seen(con, file.kind, report.sha256):
        report.skipped = True
        return report
    _ingest_general(con, file, json_format, now, report)
    return report


def _ingest_clean(
    con, file: LandingFile, json_format: str, now: datetime, report: IngestReport, digest: Future
) -> bool:
    """Path 1; False (nothing written) when the file needs the general path or its content
    was ingested before under another name."""
    try:
        with insertion_order(con, preserve=False), transaction(con):
            inserted = _insert_clean(con, file, json_format, now)
            report.sha256 = digest.result()
            if _content_seen(con, file.kind, report.sha256):
                raise _NotClean("the same content was ingested before")
            report.rows_read = report.rows_accepted = inserted
            _record_in_ledger(con, file, report, now)
        return True
    except (duckdb.InvalidInputException, _NotClean):
        return False  # a record to reject, a stored user or artist, or JSON read_json cannot read


def _ingest_general(
    con, file: LandingFile, json_format: str, now: datetime, report: IngestReport
) -> None:
    """Paths 2 and 3: every record checked into ``validated``, then one transaction."""
    with insertion_order(con, preserve=True):  # records are numbered by the order they come in
        numbered_by_rowid = _parse(con, file, json_format)
    # records are numbered now: what follows may write rows in any order
    with insertion_order(con, preserve=False):
        _validate(con, file.kind, numbered_by_rowid)
    reasons = _reason_counts(con)
    report.rows_read = scalar(con, "SELECT count(*) FROM validated")
    report.rows_rejected = sum(reasons.values())
    report.rows_accepted = report.rows_read - report.rows_rejected
    report.rejected_by_reason = dict(reasons)
    with insertion_order(con, preserve=False), transaction(con):
        _apply_accepted(con, file.kind, file.relative_path, now)
        con.execute(
            f"""INSERT INTO rejected_rows
                SELECT ?, ?, ?, v.record_no, {_raw_record(file.kind)}, v.reason, ?
                FROM validated v JOIN parsed p ON v.record_no = {_record_no(numbered_by_rowid)}
                WHERE v.reason IS NOT NULL""",
            [file.relative_path, report.sha256, file.kind, now],
        )
        _record_in_ledger(con, file, report, now)


def retry_pending_ratings(con: duckdb.DuckDBPyConnection) -> int:
    """Re-validate ratings rejected for an unknown user or artist; returns how many now pass.

    Rows that pass move from ``rejected_rows`` to ``ratings`` (keeping their source file)
    and their file's ledger counts move from rejected to accepted.
    """
    ensure_schema(con)
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE records AS
        SELECT row_number() OVER (ORDER BY r.rejected_at, r.record_no) AS record_no,
               r.raw, r.source_file, r.sha256, r.record_no AS original_record_no
        FROM rejected_rows r
        WHERE r.kind = 'ratings' AND r.reason IN ('{UNKNOWN_USER}', '{UNKNOWN_ARTIST}')
          AND EXISTS (SELECT 1 FROM users u
                      WHERE u.id = json_extract_string(r.raw, '$.user_id'))
          AND EXISTS (SELECT 1 FROM artists a
                      WHERE a.id = json_extract_string(r.raw, '$.artist_id'))
        """
    )
    if scalar(con, "SELECT count(*) FROM records") == 0:
        return 0
    _parse_records(con, "ratings")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE parsed AS "
        "SELECT p.*, r.source_file, r.sha256, r.original_record_no "
        "FROM parsed p JOIN records r USING (record_no)"
    )
    _validate(con, "ratings")
    # within a retry batch, rows for the same pair come from different files: the loser is
    # superseded (an older rating), not a duplicate, so it counts as accepted too
    con.execute(f"UPDATE validated SET reason = NULL WHERE reason = '{DUPLICATE}'")
    con.execute("DELETE FROM validated WHERE reason IS NOT NULL")
    now = datetime.now(UTC).replace(tzinfo=None)
    with transaction(con):
        _apply_accepted(con, "ratings", None, now)
        con.execute(
            """DELETE FROM rejected_rows USING validated v
               WHERE rejected_rows.kind = 'ratings' AND rejected_rows.sha256 = v.sha256
                 AND rejected_rows.record_no = v.original_record_no"""
        )
        con.execute(
            """UPDATE ingested_files SET rows_accepted = rows_accepted + moved.n,
                                         rows_rejected = rows_rejected - moved.n
               FROM (SELECT sha256, count(*) AS n FROM validated GROUP BY sha256) moved
               WHERE ingested_files.kind = 'ratings' AND ingested_files.sha256 = moved.sha256"""
        )
    return scalar(con, "SELECT count(*) FROM validated")
