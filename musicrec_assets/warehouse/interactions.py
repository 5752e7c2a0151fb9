"""The users × artists matrix, read from the warehouse with stable id ↔ index maps.

``user_index`` and ``artist_index`` assign each id a row/column once and forever: new ids are
appended, existing ones keep their index, so a matrix built tomorrow lines up with today's.
The evaluation split is stored by id (``evaluation_split``) so anyone can score on it.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
from scipy.sparse import csr_matrix

from musicrec_assets.model.factors import Feedback
from musicrec_assets.warehouse import feedback_kind
from musicrec_assets.warehouse.feedback_kind import VALUE_COLUMN
from musicrec_assets.warehouse.tables import publish_table, scalar

# rows per batch read from the warehouse and per Parquet row group written for Spark: large
# enough for Spark to split files into tasks cheaply
ROW_GROUP_ROWS = 1_000_000
INDEX_SCHEMA = """
CREATE TABLE IF NOT EXISTS user_index (user_id VARCHAR NOT NULL, user_idx INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS artist_index (artist_id VARCHAR NOT NULL, artist_idx INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class RatingMatrix:
    values: csr_matrix  # users × artists: ratings (explicit) or play counts (implicit)
    user_ids: np.ndarray  # row -> user id
    item_ids: np.ndarray  # column -> artist id
    feedback: Feedback


def resolve_feedback(con: duckdb.DuckDBPyConnection, requested: str) -> Feedback:
    """The home's kind of feedback (:mod:`~musicrec_assets.warehouse.feedback_kind`), which
    ``auto`` takes and ``explicit`` or ``implicit`` decides on a home that has none (and is an
    error on a home of the other kind); a home from before the kind was kept decides by its
    stored ratings. No ratings at all: implicit, deciding nothing.

    ``requested`` may be a str enum (the settings' ``FeedbackSetting``): the result is a
    plain str either way, as Dagster's metadata and run storage accept only those."""
    home = feedback_kind.settle(con, requested) or feedback_kind.decide_by_majority(
        con, "ratings", "rating", "plays", "the stored ratings"
    )
    return home or "implicit"


def update_indexes(con: duckdb.DuckDBPyConnection, feedback: Feedback) -> None:
    """Append every id with a value of this feedback kind that has no index yet."""
    con.execute(INDEX_SCHEMA)
    value = VALUE_COLUMN[feedback]
    for table, id_column, source_column in (
        ("user_index", "user_id", "user_id"),
        ("artist_index", "artist_id", "artist_id"),
    ):
        idx = id_column.replace("_id", "_idx")
        con.execute(
            f"""
            INSERT INTO {table}
            SELECT id, (SELECT coalesce(max({idx}) + 1, 0) FROM {table})
                       + row_number() OVER (ORDER BY id) - 1
            FROM (SELECT DISTINCT {source_column} AS id FROM ratings WHERE {value} IS NOT NULL
                  EXCEPT SELECT {id_column} FROM {table})
            """
        )


def _ids(con: duckdb.DuckDBPyConnection, table: str, id_column: str) -> np.ndarray:
    idx = id_column.replace("_id", "_idx")
    ids = con.execute(f"SELECT {id_column} FROM {table} ORDER BY {idx}").fetchnumpy()
    return np.asarray(ids[id_column], dtype=str)


def _matrix(con, feedback: Feedback, where: str = "", params: list | None = None) -> csr_matrix:
    value = VALUE_COLUMN[feedback]
    arrays = con.execute(
        f"""
        SELECT u.user_idx, a.artist_idx, r.{value}::FLOAT AS value
        FROM ratings r
        JOIN user_index u USING (user_id)
        JOIN artist_index a USING (artist_id)
        {where}
        {"AND" if where else "WHERE"} r.{value} IS NOT NULL
        """,
        params or [],
    ).fetchnumpy()
    shape = (
        scalar(con, "SELECT count(*) FROM user_index"),
        scalar(con, "SELECT count(*) FROM artist_index"),
    )
    return csr_matrix(
        (arrays["value"], (arrays["user_idx"], arrays["artist_idx"])), shape=shape, dtype=np.float32
    )


def load_matrix(con: duckdb.DuckDBPyConnection, feedback: Feedback) -> RatingMatrix:
    """All interactions of one feedback kind, indexed by the stored maps."""
    return RatingMatrix(_matrix(con, feedback), *load_ids(con), feedback=feedback)


def load_ids(con: duckdb.DuckDBPyConnection) -> tuple[np.ndarray, np.ndarray]:
    """(user ids, artist ids) in row and column order of the stored maps."""
    return _ids(con, "user_index", "user_id"), _ids(con, "artist_index", "artist_id")


SPLIT_CHUNK_ROWS = 2_000_000


def save_split(con, train: csr_matrix, test: csr_matrix) -> int:
    """Publish ``evaluation_split(user_id, artist_id, part)``; returns its row count.

    Rows leave Python as integer indexes, in chunks, and get their ids from the index tables
    in SQL: millions of string ids as numpy or Python strings would cost gigabytes.
    """

    def chunks() -> Iterator[pa.Table]:
        for part, values in (("train", train), ("test", test)):
            coo = values.tocoo()
            for start in range(0, coo.nnz, SPLIT_CHUNK_ROWS):
                stop = start + SPLIT_CHUNK_ROWS
                con.register(
                    "split_indexes",
                    pa.table(
                        {
                            "user_idx": coo.row[start:stop].astype(np.int32),
                            "artist_idx": coo.col[start:stop].astype(np.int32),
                        }
                    ),
                )
                yield con.sql(
                    """SELECT u.user_id, a.artist_id, ?::VARCHAR AS part
                       FROM split_indexes s
                       JOIN user_index u USING (user_idx)
                       JOIN artist_index a USING (artist_idx)""",
                    params=[part],
                ).to_arrow_table()
                con.unregister("split_indexes")

    return publish_table(con, "evaluation_split", chunks())


def load_split(con, feedback: Feedback) -> tuple[csr_matrix, csr_matrix]:
    """(train, test) matrices of the stored evaluation split, aligned with the indexes."""
    where = "JOIN evaluation_split s USING (user_id, artist_id) WHERE s.part = ?"
    return _matrix(con, feedback, where, ["train"]), _matrix(con, feedback, where, ["test"])


@dataclass(frozen=True)
class MatrixSummary:
    """What the matrix holds, computed in SQL (no matrix in memory): its shape and number of
    interactions, a histogram of values (ratings rounded to 0.1; log10 of play counts, rounded)
    and quantiles of the interactions per user and per artist."""

    users: int
    artists: int
    interactions: int
    histogram: pd.DataFrame  # value | log10(plays), count
    per_user: dict[str, float]
    per_artist: dict[str, float]


_QUANTILES = {"min": 0.0, "p25": 0.25, "median": 0.5, "p75": 0.75, "p90": 0.9, "max": 1.0}


def summary(con: duckdb.DuckDBPyConnection, feedback: Feedback) -> MatrixSummary:
    """The :class:`MatrixSummary` of the indexed interactions of ``feedback``'s kind."""
    value = VALUE_COLUMN[feedback]
    interactions = f"""
        SELECT u.user_idx, a.artist_idx, r.{value}::DOUBLE AS value FROM ratings r
        JOIN user_index u USING (user_id) JOIN artist_index a USING (artist_id)
        WHERE r.{value} IS NOT NULL"""
    bucket, label = (
        ("round(value, 1)", "value")
        if feedback == "explicit"
        else ("round(log10(value))", "log10(plays)")
    )
    histogram = con.execute(
        f'SELECT {bucket} AS "{label}", count(*) AS count FROM ({interactions}) '
        "GROUP BY 1 ORDER BY 1"
    ).df()

    def quantiles(index: str, idx: str) -> dict[str, float]:
        # every indexed id counts, those without an interaction of this kind as 0
        points = ", ".join(f"quantile_cont(n, {q}) AS {name}" for name, q in _QUANTILES.items())
        row = con.execute(
            f"""SELECT {points} FROM (
                    SELECT count(i.{idx}) AS n FROM {index} x
                    LEFT JOIN ({interactions}) i ON i.{idx} = x.{idx} GROUP BY x.{idx})"""
        ).df()
        return {name: float(row[name].iloc[0] if len(row) else 0.0) for name in _QUANTILES}

    return MatrixSummary(
        users=scalar(con, "SELECT count(*) FROM user_index"),
        artists=scalar(con, "SELECT count(*) FROM artist_index"),
        interactions=int(histogram["count"].sum()),
        histogram=histogram,
        per_user=quantiles("user_index", "user_idx"),
        per_artist=quantiles("artist_index", "artist_idx"),
    )


def split_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rows per part of ``evaluation_split`` and the users with rows in each."""
    train, test, train_users, test_users = con.execute(
        """SELECT count(*) FILTER (WHERE part = 'train'), count(*) FILTER (WHERE part = 'test'),
                  count(DISTINCT user_id) FILTER (WHERE part = 'train'),
                  count(DISTINCT user_id) FILTER (WHERE part = 'test')
           FROM evaluation_split"""
    ).fetchall()[0]
    return {
        "train": train,
        "test": test,
        "users_with_train_rows": train_users,
        "users_with_test_rows": test_users,
    }


def interactions_query(feedback: Feedback, part: str | None) -> tuple[str, list]:
    """``(user_idx, item_idx, value)`` of every interaction of ``feedback``'s kind, or of one
    ``part`` of ``evaluation_split``: the query and its parameters."""
    value = VALUE_COLUMN[feedback]
    split = "JOIN evaluation_split s USING (user_id, artist_id)" if part else ""
    where = "AND s.part = ?" if part else ""
    return (
        f"""SELECT u.user_idx, a.artist_idx AS item_idx, r.{value}::FLOAT AS value
            FROM ratings r
            JOIN user_index u USING (user_id)
            JOIN artist_index a USING (artist_id)
            {split}
            WHERE r.{value} IS NOT NULL {where}""",
        [part] if part else [],
    )


def write_seen_npz(con: duckdb.DuckDBPyConnection, feedback: Feedback, path: Path) -> int:
    """Write every interaction as a CSR ``.npz`` that ``scipy.sparse.load_npz`` reads (what
    serving excludes per user), streamed from the warehouse in batches, so this process never
    holds the interactions; returns their count.

    ``scipy.sparse.save_npz`` needs the whole matrix in memory, hence this writer of the same
    file: a zip of the ``.npy`` arrays ``indices``, ``indptr``, ``data``, ``format``, ``shape``.
    """
    query, params = interactions_query(feedback, None)
    n_users = scalar(con, "SELECT count(*) FROM user_index")
    n_items = scalar(con, "SELECT count(*) FROM artist_index")
    counts = con.execute(
        f"SELECT user_idx, count(*) AS n FROM ({query}) GROUP BY user_idx", params
    ).fetchnumpy()
    per_user = np.bincount(counts["user_idx"], weights=counts["n"], minlength=n_users)
    per_user = per_user.astype(np.int64)
    nnz = int(per_user.sum())
    indptr = np.concatenate([[0], np.cumsum(per_user)]).astype(
        np.int32 if nnz < 2**31 else np.int64
    )
    index_dtype = indptr.dtype
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as npz:
        for name in ("indices", "data"):
            dtype = index_dtype if name == "indices" else np.dtype(np.float32)
            column = "item_idx" if name == "indices" else "value"
            with npz.open(f"{name}.npy", "w", force_zip64=True) as out:
                np.lib.format.write_array_header_1_0(
                    out,
                    {
                        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                        "fortran_order": False,
                        "shape": (nnz,),
                    },
                )
                reader = con.sql(
                    f"SELECT {column} FROM ({query}) ORDER BY user_idx, item_idx", params=params
                ).to_arrow_reader(ROW_GROUP_ROWS)
                for batch in reader:
                    values = batch.column(0).to_numpy(zero_copy_only=False)
                    out.write(np.ascontiguousarray(values, dtype=dtype).tobytes())
        for name, array in (
            ("indptr", indptr),
            ("format", np.array(b"csr")),
            ("shape", np.array([n_users, n_items], dtype=np.int64)),
        ):
            with npz.open(f"{name}.npy", "w", force_zip64=True) as out:
                np.lib.format.write_array(out, array, allow_pickle=False)
    return nnz
