"""The clean pass: a file whose every record passes goes in with one ``INSERT`` from
``read_json``; any doubt rolls it back, and the file takes the general path."""

from __future__ import annotations

from concurrent.futures import Future
from datetime import datetime

import duckdb

from musicrec_assets.warehouse import feedback_kind
from musicrec_assets.warehouse.feedback_kind import VALUE_COLUMN
from musicrec_assets.warehouse.ingest import ledger
from musicrec_assets.warehouse.ingest.fields import (
    CONTROL_CHARACTER,
    FIELDS,
    KEYS,
    SIDE_FIELDS,
    checked,
    read_json_records,
    replaces_stored,
    tag_rows,
)
from musicrec_assets.warehouse.landing import LandingFile
from musicrec_assets.warehouse.tables import insertion_order, scalar, transaction


class NotClean(Exception):
    """The clean pass cannot take the file: a key repeats within it, or an id may be of the
    wrong type or is not known."""


def insert(con, file: LandingFile, json_format: str, ingested_at: datetime) -> int:
    """Insert a file whose every record passes; returns the number of records.
    Raises duckdb.Error or NotClean otherwise (the caller's transaction then rolls back).

    A rating for a stored pair is resolved after the insert (:func:`_keep_newest_ratings`);
    a stored user or artist, whose names merge, is left to the general path.

    Ids are read as VARCHAR, which spares unquoting each one, and checked on the inserted
    rows, where they come back dictionary-encoded and each distinct id costs once:

    - an id that is not known (ratings);
    - an id that holds a control character;
    - an id whose text is itself JSON: VARCHAR gives a string's content but any other
      value's JSON text, so ``1.5``, ``true`` or ``[1]`` may have been the wrong type. Only
      the general path, which reads ids as JSON, can tell; integers mean the same either way.

    Keys repeated within the file are checked on the inserted rows too, and so is the kind of
    feedback when these are the home's first ratings.
    """
    kind = file.kind
    keys = KEYS[kind]
    new_id = "" if kind == "ratings" else f"AND id_value NOT IN (SELECT id FROM {kind})"
    params = {"source_file": file.relative_path, "ingested_at": ingested_at}
    records = read_json_records(kind, json_format, file.compression, ids_as_text=True)
    statement = f"""
        INSERT INTO {kind}
        SELECT {", ".join(f"{n}_value" for n in FIELDS[kind])}, $source_file,
               $ingested_at::TIMESTAMP
        FROM ({checked(kind, records, clean_pass=True)})
        WHERE CASE WHEN reason IS NULL {new_id} THEN true ELSE error('not clean') END
        """
    inserted = con.execute(statement, {"path": file.reader_path, **params}).fetchone()[0]
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
        objections[f"a {key} may not be a string, holds a control character or is not known"] = f"""
            SELECT 1 FROM (SELECT DISTINCT {key} AS id FROM {new_rows})
            WHERE (json_valid(id) AND NOT regexp_full_match(id, '-?[0-9]+'))
               OR regexp_matches(id, '{CONTROL_CHARACTER}') {unknown}"""
    if kind == "ratings" and feedback_kind.decided(con) is None:
        # the home's first ratings: the checks could not know the kind, which these decide
        # now, inside the transaction; a record of the other kind sends the file on
        home = feedback_kind.decide_by_majority(
            con,
            new_rows,
            "rating",
            "plays",
            f"the first ratings file, {file.relative_path}",
            params,
        )
        value = VALUE_COLUMN[home]
        objections[f"a rating without {value}"] = f"SELECT 1 FROM {new_rows} WHERE {value} IS NULL"
    for objection, query in objections.items():
        if scalar(con, f"SELECT EXISTS ({query})", params):
            raise NotClean(f"{file.relative_path}: {objection}")
    if kind == "ratings":
        _keep_newest_ratings(con, params)
    if "tags" in SIDE_FIELDS.get(kind, ()):
        # every artist of the file is new (else NotClean above), so it has no tags stored yet;
        # a second read of the file, which artists' files (small beside ratings) can afford
        con.execute(
            "INSERT INTO artist_tags "
            + tag_rows(f"({checked(kind, records, clean_pass=True)})", "tags_value IS NOT NULL"),
            {"path": file.reader_path},
        )
    return inserted


def _keep_newest_ratings(con, params: dict) -> None:
    """Of each pair that the insert stored twice, delete the rating that loses by
    :func:`fields.replaces_stored`. ``params``: the new rows' ``source_file`` and
    ``ingested_at``."""

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
              AND {replaces_stored('other."timestamp"', 'ratings."timestamp"')}""",
        params,
    )
    # what is left of a stored pair beat the new rating
    con.execute(
        f"""DELETE FROM ratings USING (FROM ratings WHERE NOT ({is_new("ratings")})) other
            WHERE {is_new("ratings")} AND {same_pair}""",
        params,
    )


def try_ingest(
    con,
    file: LandingFile,
    json_format: str,
    now: datetime,
    report: ledger.IngestReport,
    digest: Future,
) -> bool:
    """The clean pass in its own transaction, recorded in the ledger; False (nothing
    written) when the file needs the general path. ``digest``: the file's sha256, computed
    beside the insert."""
    try:
        with insertion_order(con, preserve=False), transaction(con):
            inserted = insert(con, file, json_format, now)
            report.sha256 = digest.result()
            report.rows_read = report.rows_accepted = inserted
            ledger.record(con, file, report, now)
        return True
    except (duckdb.InvalidInputException, duckdb.IOException, NotClean):
        # a record to reject, a stored user or artist, JSON read_json cannot read, or a file
        # it cannot decompress: the general path tells them apart
        return False
