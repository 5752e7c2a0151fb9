"""The DuckDB warehouse: table definitions and the one way we publish a table.

Tables are a public interface (see README). Input tables are created here; output tables
are created by whoever computes them, through :func:`publish_table`, so that a reader
never sees a half-written or mixed-version table.
"""

from __future__ import annotations

import stat
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from musicrec_assets.warehouse import feedback_kind

if TYPE_CHECKING:
    # the command line's readers import this module: pandas alone takes longer than they may
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
-- an artist's tags as its newest record with tags gave them, normalised (lower case, white
-- space trimmed and collapsed); weight 1 for a listed tag, else as given (e.g. listeners)
CREATE TABLE IF NOT EXISTS artist_tags (
    artist_id   VARCHAR NOT NULL,
    tag         VARCHAR NOT NULL,
    weight      DOUBLE NOT NULL
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
    ingested_at   TIMESTAMP NOT NULL,
    failure       VARCHAR  -- why the file could not be read; NULL when it was ingested
);
ALTER TABLE ingested_files ADD COLUMN IF NOT EXISTS failure VARCHAR;
CREATE TABLE IF NOT EXISTS landing_fingerprints (
    path        VARCHAR NOT NULL,
    size_bytes  BIGINT NOT NULL,
    mtime_ns    BIGINT NOT NULL,
    changed_ns  BIGINT NOT NULL,  -- the ctime
    inode       UBIGINT NOT NULL,
    sha256      VARCHAR NOT NULL,
    seen_at     TIMESTAMP NOT NULL
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
    con.execute(feedback_kind.SCHEMA)


# what a read-only connection may not do besides writing the database file, which read_only
# already forbids: touch any other file (COPY … TO, ATTACH, read_csv('/etc/passwd'), EXPORT,
# INSTALL/LOAD, secrets), spill to a temporary directory, or change a setting (SET, RESET,
# PRAGMA), which would lift the rest
READER_LOCKDOWN = {
    "enable_external_access": False,
    "temp_directory": "",
    "lock_configuration": True,
}


def connect(path: str | Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse; a clear error when another process holds the write lock, or the
    file is not a warehouse. A read-only connection can write nothing anywhere
    (:data:`READER_LOCKDOWN`)."""
    path = Path(path)
    if read_only and not path.exists():
        raise FileNotFoundError(
            f"no warehouse at {path}: run `make demo` (or `musicrec run`) first"
        )
    config = {"python_enable_replacements": False} | (READER_LOCKDOWN if read_only else {})
    try:
        return duckdb.connect(str(path), read_only=read_only, config=config)
    except duckdb.Error as error:
        if isinstance(error, duckdb.IOException) and "lock" in str(error).lower():
            raise WarehouseBusy(
                f"the warehouse {path} is locked by a running pipeline; try again when it ends"
            ) from error
        if is_damage(error):
            raise DamagedStore(
                f"the warehouse {path} is damaged ({first_line(error)}): restore it from a "
                "backup, or run `musicrec run`, which publishes it again from the runs' "
                "working copy when that is intact"
            ) from error
        raise OSError(f"cannot open the warehouse {path}: {first_line(error)}") from error


def is_damage(error: Exception) -> bool:
    """Whether DuckDB's ``error`` says its file is not a (whole) database, rather than busy."""
    text = str(error).lower()
    return any(
        words in text
        for words in ("not a valid duckdb database", "corrupt", "checksum", "block id")
    )


def first_line(error: Exception) -> str:
    """DuckDB's message without the query excerpt and caret lines it adds below."""
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


class WarehouseBusy(RuntimeError):
    """Another process holds DuckDB's write lock on the warehouse file."""


def not_a_file(path: Path) -> str | None:
    """Why ``path`` cannot be a store, when something else stands at it: a directory, or a
    FIFO, socket or device (opening a FIFO would wait for a writer forever); None when it is a
    regular file (a symlink is followed) or nothing is there."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISREG(mode):
        return None
    return "a directory, not a file" if stat.S_ISDIR(mode) else "not a regular file"


class DamagedStore(RuntimeError):
    """A file of the home (the warehouse, its working copy, the MLflow store, a downloaded
    model) that is not what it must be: random bytes, cut short. Its message names the file
    and what to do; ``musicrec`` prints it as one line and exits 2."""


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


def columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    """The column names of ``table`` (none where it does not exist)."""
    query = "SELECT column_name FROM information_schema.columns WHERE table_name = ?"
    return {name for (name,) in con.execute(query, [table]).fetchall()}


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


def publish_query(
    con: duckdb.DuckDBPyConnection, name: str, query: str, params: list | None = None
) -> int:
    """:func:`publish_table` from a query (e.g. over ``read_parquet``), which DuckDB streams
    into the staging table without the rows passing through Python; returns the row count."""
    staging = f"{name}__staging"
    con.execute(f'DROP TABLE IF EXISTS "{staging}"')
    con.execute(f'CREATE TABLE "{staging}" AS {query}', params or [])
    with transaction(con):
        con.execute(f'DROP TABLE IF EXISTS "{name}"')
        con.execute(f'ALTER TABLE "{staging}" RENAME TO "{name}"')
    return scalar(con, f'SELECT count(*) FROM "{name}"')


def scalar(con: duckdb.DuckDBPyConnection, query: str, params: list | dict | None = None):
    """The single value a query returns (fetches it all: DuckDB 2 keeps a result open until
    it is exhausted, which blocks the connection's next statement)."""
    return con.execute(query, params or []).fetchall()[0][0]
