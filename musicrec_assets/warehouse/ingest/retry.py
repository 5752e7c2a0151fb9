"""Ratings parked in ``rejected_rows`` for an unknown user or artist, retried once the ids
have arrived, by the rules of a first ingest: of one file's ratings for a pair, the newest is
the file's and the others are duplicates within the file; of several files' ratings for a
pair, the newest wins, a tie going to the later file; and the winner meets a stored rating of
the pair by :func:`fields.replaces_stored`."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb

from musicrec_assets.warehouse.ingest.fields import (
    DUPLICATE,
    UNKNOWN_ARTIST,
    UNKNOWN_USER,
    checked,
    parsed_text,
)
from musicrec_assets.warehouse.ingest.general_path import apply_accepted
from musicrec_assets.warehouse.tables import scalar, transaction

# a retried rating that loses to another file's rating of its pair: accepted, as a first
# ingest accepts an older rating, but not stored; never written to a table
_OLDER_THAN_ANOTHER_FILES = "older than a rating of the pair in another file"

# an ingest of a file is known by the hash of its sha256 and time (one content may be ingested
# more than once: a file restored to an earlier version), eight bytes instead of 64 characters
# a rating; its row in ingested_files has the same sha256 and time (ingested_at)
_PARKED = f"""(
    SELECT rowid AS parked_rowid, hash(sha256, rejected_at) AS file_key, source_file,
           rejected_at, record_no,
           raw, NULL::VARCHAR AS problem
    FROM rejected_rows
    WHERE kind = 'ratings' AND reason IN ('{UNKNOWN_USER}', '{UNKNOWN_ARTIST}')
      AND json_extract_string(raw, '$.user_id') IN (SELECT id FROM users)
      AND json_extract_string(raw, '$.artist_id') IN (SELECT id FROM artists))"""


def retry_pending_ratings(con: duckdb.DuckDBPyConnection) -> int:
    """Re-validate ratings rejected for an unknown user or artist; returns how many now pass.

    Rows that pass move from ``rejected_rows`` to ``ratings`` (keeping their source file)
    and their file's ledger counts move from rejected to accepted; a rating that another of
    its file's ratings for the pair supersedes stays rejected, as a duplicate within the file.
    The caller has created the schema (:func:`musicrec_assets.warehouse.tables.ensure_schema`).
    """
    con.execute("SET TimeZone = 'UTC'")
    now = datetime.now(UTC).replace(tzinfo=None)
    # one transaction from the first read: rowids of rejected_rows stay put within it
    with transaction(con):
        carried = "parked_rowid, file_key, source_file, rejected_at, record_no"
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE validated AS
                FROM ({checked("ratings", f"({parsed_text('ratings', _PARKED, carried)})")})
                WHERE reason IS NULL"""
        )
        if scalar(con, "SELECT count(*) FROM validated") == 0:
            return 0
        _mark_superseded(con)
        apply_accepted(con, "ratings", None, now)
        moved = f"(SELECT parked_rowid FROM validated WHERE reason IS DISTINCT FROM '{DUPLICATE}')"
        con.execute(
            f"""UPDATE ingested_files SET rows_accepted = rows_accepted + moved.n,
                                          rows_rejected = rows_rejected - moved.n
                FROM (SELECT file_key, count(*) AS n FROM validated
                      WHERE reason IS DISTINCT FROM '{DUPLICATE}' GROUP BY file_key) moved
                WHERE ingested_files.kind = 'ratings'
                  AND hash(ingested_files.sha256, ingested_files.ingested_at) = moved.file_key"""
        )
        con.execute(f"DELETE FROM rejected_rows WHERE rowid IN {moved}")
        con.execute(
            f"""UPDATE rejected_rows SET reason = '{DUPLICATE}' WHERE rowid IN
                (SELECT parked_rowid FROM validated WHERE reason = '{DUPLICATE}')"""
        )
        return scalar(
            con, f"SELECT count(*) FROM validated WHERE reason IS DISTINCT FROM '{DUPLICATE}'"
        )


def _mark_superseded(con) -> None:
    """Give every retried rating but the newest of its pair a reason: a duplicate within its
    file, or older than another file's. The order is a first ingest's: newest timestamp
    first, then the later file (``rejected_at``, when the file was ingested), then the later
    line of the file."""
    pair = "user_id_value, artist_id_value"
    newest = "timestamp_value DESC NULLS LAST"
    # pairs are grouped by their hash, far cheaper than by the strings; a collision only
    # lets a few more ratings into the exact windows, which partition by the pair itself
    con.execute(
        f"""
        UPDATE validated SET reason = CASE WHEN ranked.newest_in_file > 1 THEN '{DUPLICATE}'
                                           ELSE '{_OLDER_THAN_ANOTHER_FILES}' END
        FROM (
            SELECT parked_rowid,
                   row_number() OVER (PARTITION BY {pair}, file_key
                                      ORDER BY {newest}, record_no DESC) AS newest_in_file,
                   row_number() OVER (PARTITION BY {pair}
                                      ORDER BY {newest}, rejected_at DESC, record_no DESC)
                       AS newest_of_pair
            FROM validated
            WHERE hash({pair}) IN (SELECT hash({pair}) FROM validated
                                   GROUP BY ALL HAVING count(*) > 1)
        ) ranked
        WHERE validated.parked_rowid = ranked.parked_rowid AND ranked.newest_of_pair > 1
        """
    )
