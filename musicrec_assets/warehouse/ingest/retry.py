"""Ratings parked in ``rejected_rows`` for an unknown user or artist, retried once the ids
have arrived."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb

from musicrec_assets.warehouse.ingest.fields import DUPLICATE, UNKNOWN_ARTIST, UNKNOWN_USER
from musicrec_assets.warehouse.ingest.general_path import apply_accepted, parse_records, validate
from musicrec_assets.warehouse.tables import scalar, transaction


def retry_pending_ratings(con: duckdb.DuckDBPyConnection) -> int:
    """Re-validate ratings rejected for an unknown user or artist; returns how many now pass.

    Rows that pass move from ``rejected_rows`` to ``ratings`` (keeping their source file)
    and their file's ledger counts move from rejected to accepted. The caller has created
    the schema (:func:`musicrec_assets.warehouse.tables.ensure_schema`).
    """
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
    parse_records(con, "ratings")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE parsed AS "
        "SELECT p.*, r.source_file, r.sha256, r.original_record_no "
        "FROM parsed p JOIN records r USING (record_no)"
    )
    validate(con, "ratings")
    # within a retry batch, rows for the same pair come from different files: the loser is
    # superseded (an older rating), not a duplicate, so it counts as accepted too
    con.execute(f"UPDATE validated SET reason = NULL WHERE reason = '{DUPLICATE}'")
    con.execute("DELETE FROM validated WHERE reason IS NOT NULL")
    now = datetime.now(UTC).replace(tzinfo=None)
    with transaction(con):
        apply_accepted(con, "ratings", None, now)
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
