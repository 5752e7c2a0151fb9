"""The DuckDB warehouse: table definitions and the one way we publish a table.

Tables are a public interface (see README). Input tables are created here; output tables
are created by whoever computes them, through :func:`publish_table`, so that a reader
never sees a half-written or mixed-version table.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id          VARCHAR NOT NULL,
    first_name  VARCHAR,
    last_name   VARCHAR,
    source_file VARCHAR NOT NULL,
    ingested_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS artists (
    id          VARCHAR NOT NULL,
    name        VARCHAR,
    source_file VARCHAR NOT NULL,
    ingested_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS ratings (
    user_id     VARCHAR NOT NULL,
    artist_id   VARCHAR NOT NULL,
    rating      DOUBLE,
    plays       BIGINT,
    "timestamp" TIMESTAMP,
    source_file VARCHAR NOT NULL,
    ingested_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS ingested_files (
    path          VARCHAR NOT NULL,
    sha256        VARCHAR NOT NULL,
    kind          VARCHAR NOT NULL,
    size_bytes    BIGINT NOT NULL,
    mtime_ns      BIGINT NOT NULL,
    rows_read     BIGINT NOT NULL,
    rows_accepted BIGINT NOT NULL,
    rows_rejected BIGINT NOT NULL,
    ingested_at   TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS rejected_rows (
    source_file VARCHAR NOT NULL,
    sha256      VARCHAR NOT NULL,
    kind        VARCHAR NOT NULL,
    record_no   BIGINT NOT NULL,
    raw         VARCHAR,
    reason      VARCHAR NOT NULL,
    rejected_at TIMESTAMP NOT NULL
);
"""


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the input tables where missing: once per ingest step, by the ingest asset
    (``ingest_file`` and ``retry_pending_ratings`` take the schema as given)."""
    con.execute(SCHEMA)


def connect(path: str | Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse; a clear error when another process holds the write lock."""
    path = Path(path)
    if read_only and not path.exists():
        raise FileNotFoundError(
            f"no warehouse at {path}: run `make demo` (or `musicrec run`) first"
        )
    try:
        return duckdb.connect(
            str(path), read_only=read_only, config={"python_enable_replacements": False}
        )
    except duckdb.IOException as error:
        if "lock" in str(error).lower():
            raise WarehouseBusy(
                f"the warehouse {path} is locked by a running pipeline; try again when it ends"
            ) from error
        raise


class WarehouseBusy(RuntimeError):
    """Another process holds DuckDB's write lock on the warehouse file."""


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection):
    con.begin()
    try:
        yield con
    except BaseException:
        con.rollback()
        raise
    con.commit()


@contextmanager
def insertion_order(con: duckdb.DuckDBPyConnection, preserve: bool):
    """Whether DuckDB keeps rows in the order it reads them, for this connection only, and
    back to what it was after. Without order it inserts from every thread (a third faster)."""
    previous = scalar(con, "SELECT current_setting('preserve_insertion_order')")
    con.execute(f"SET SESSION preserve_insertion_order = {bool(preserve)}")
    try:
        yield
    finally:
        con.execute(f"SET SESSION preserve_insertion_order = {bool(previous)}")


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    query = "SELECT count(*) FROM information_schema.tables WHERE table_name = ?"
    return scalar(con, query, [name]) > 0


def publish_table(con: duckdb.DuckDBPyConnection, name: str, chunks: Iterable[pd.DataFrame]) -> int:
    """Write ``chunks`` to a staging table, then swap it in as ``name`` in one transaction.

    Readers of ``name`` see the old table until the commit, the new one after it, never a
    mix. Returns the row count. ``name`` is one of our own table names, never data.
    """
    staging = f"{name}__staging"
    con.execute(f'DROP TABLE IF EXISTS "{staging}"')
    rows = 0
    for chunk in chunks:
        con.register("publish_chunk", chunk)
        if rows == 0 and not table_exists(con, staging):
            con.execute(f'CREATE TABLE "{staging}" AS SELECT * FROM publish_chunk')
        else:
            con.execute(f'INSERT INTO "{staging}" SELECT * FROM publish_chunk')
        con.unregister("publish_chunk")
        rows += len(chunk)
    if not table_exists(con, staging):
        raise ValueError(f"nothing to publish as {name}: no chunks")
    with transaction(con):
        con.execute(f'DROP TABLE IF EXISTS "{name}"')
        con.execute(f'ALTER TABLE "{staging}" RENAME TO "{name}"')
    return rows


def scalar(con: duckdb.DuckDBPyConnection, query: str, params: list | dict | None = None):
    """The single value a query returns (fetches it all: DuckDB 2 keeps a result open until
    it is exhausted, which blocks the connection's next statement)."""
    return con.execute(query, params or []).fetchall()[0][0]
