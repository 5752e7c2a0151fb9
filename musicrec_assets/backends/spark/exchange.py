"""What leaves the warehouse as files for Spark and comes back: interactions as Parquet out,
Spark's split and top-N tables in.

DuckDB streams both ways (``COPY … TO`` and ``read_parquet``), so neither direction holds the
interactions in this process: the data Spark reads and writes scales on the cluster, the
driver only names folders. Folders are ours (under ``MUSICREC_HOME/spark``), never taken from
data; on a real cluster that folder must be storage every executor reads under the same path.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb

from musicrec_assets.model.factors import Feedback
from musicrec_assets.warehouse.interactions import ROW_GROUP_ROWS, interactions_query
from musicrec_assets.warehouse.tables import publish_query, scalar


def export_interactions(
    con: duckdb.DuckDBPyConnection, feedback: Feedback, folder: Path, part: str | None = None
) -> Path:
    """Write ``(user_idx INT, item_idx INT, value FLOAT)`` of every interaction of ``feedback``'s
    kind, or of one ``part`` ("train"/"test") of ``evaluation_split``, as Parquet files in
    ``folder`` (replaced); returns the folder."""
    query, params = interactions_query(feedback, part)
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    con.execute(
        f"COPY ({query}) TO '{_sql_path(folder)}' "
        f"(FORMAT parquet, PER_THREAD_OUTPUT true, ROW_GROUP_SIZE {ROW_GROUP_ROWS})",
        params,
    )
    return folder


def _sql_path(folder: Path) -> str:
    # our own folder under MUSICREC_HOME, quoted as a literal: COPY takes no parameter there
    return str(folder).replace("'", "''")


def _parquet(folder: Path) -> str:
    return f"read_parquet('{_sql_path(folder)}/**/*.parquet')"


def publish_split(con: duckdb.DuckDBPyConnection, folder: Path) -> int:
    """Publish ``evaluation_split(user_id, artist_id, part)`` from Spark's
    ``(user_idx, item_idx, part)`` Parquet; returns its row count."""
    return publish_query(
        con,
        "evaluation_split",
        f"""SELECT u.user_id, a.artist_id, s.part
            FROM {_parquet(folder)} s
            JOIN user_index u USING (user_idx)
            JOIN artist_index a ON a.artist_idx = s.item_idx""",
    )


def publish_top_n(
    con: duckdb.DuckDBPyConnection, table: str, folder: Path, select: str, params: list
) -> int:
    """Publish ``table`` from Spark's top-N Parquet in ``folder``: ``select`` is the column
    list over the aliases ``t`` (the Parquet rows), ``u`` (user_index) and ``a``/``b``
    (artist_index), joined on ``t.user_idx``, ``t.item_idx`` and ``t.similar_idx`` where the
    rows have them; ``params`` fill its placeholders (e.g. the model version)."""
    columns = scalar(
        con, f"SELECT list(column_name) FROM (DESCRIBE SELECT * FROM {_parquet(folder)})"
    )
    joins = []
    if "user_idx" in columns:
        joins.append("JOIN user_index u ON u.user_idx = t.user_idx")
    if "item_idx" in columns:
        joins.append("JOIN artist_index a ON a.artist_idx = t.item_idx")
    if "similar_idx" in columns:
        joins.append("JOIN artist_index b ON b.artist_idx = t.similar_idx")
    return publish_query(
        con, table, f"SELECT {select} FROM {_parquet(folder)} t {' '.join(joins)}", params
    )
