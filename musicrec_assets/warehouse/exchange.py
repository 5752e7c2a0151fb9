"""What leaves the warehouse as files and comes back: interactions as Parquet for the Spark
backend and Spark's results in; the interactions as the MLflow model's ``seen.npz``.

DuckDB streams both ways (``COPY … TO`` and ``read_parquet``), so neither direction holds the
interactions in this process: the data Spark reads and writes scales on the cluster, the
driver only names folders. Folders are ours (under ``MUSICREC_HOME/spark``), never taken from
data; on a real cluster that folder must be storage every executor reads under the same path.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import duckdb
import numpy as np

from musicrec_assets.model.factors import Feedback
from musicrec_assets.warehouse.interactions import VALUE_COLUMN
from musicrec_assets.warehouse.tables import publish_query, scalar

# rows per Parquet row group: large enough for Spark to split files into tasks cheaply
_ROW_GROUP_ROWS = 1_000_000


def _interactions_query(feedback: Feedback, part: str | None) -> tuple[str, list]:
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


def export_interactions(
    con: duckdb.DuckDBPyConnection, feedback: Feedback, folder: Path, part: str | None = None
) -> Path:
    """Write ``(user_idx INT, item_idx INT, value FLOAT)`` of every interaction of ``feedback``'s
    kind, or of one ``part`` ("train"/"test") of ``evaluation_split``, as Parquet files in
    ``folder`` (replaced); returns the folder."""
    query, params = _interactions_query(feedback, part)
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    con.execute(
        f"COPY ({query}) TO '{_sql_path(folder)}' "
        f"(FORMAT parquet, PER_THREAD_OUTPUT true, ROW_GROUP_SIZE {_ROW_GROUP_ROWS})",
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


def write_seen_npz(con: duckdb.DuckDBPyConnection, feedback: Feedback, path: Path) -> int:
    """Write every interaction as a CSR ``.npz`` that ``scipy.sparse.load_npz`` reads (what
    serving excludes per user), streamed from the warehouse in batches, so this process never
    holds the interactions; returns their count.

    ``scipy.sparse.save_npz`` needs the whole matrix in memory, hence this writer of the same
    file: a zip of the ``.npy`` arrays ``indices``, ``indptr``, ``data``, ``format``, ``shape``.
    """
    query, params = _interactions_query(feedback, None)
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
                ).to_arrow_reader(_ROW_GROUP_ROWS)
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
