"""The warehouse's Parquet exchange with Spark: what goes out equals the matrix the local backend
loads, and what comes back is published whole under the ids."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.sparse import load_npz

from musicrec_assets.backends.spark import exchange
from musicrec_assets.warehouse import interactions
from musicrec_assets.warehouse.tables import connect, ensure_schema


@pytest.fixture
def con(tmp_path):
    connection = connect(tmp_path / "warehouse.duckdb")
    ensure_schema(connection)
    rng = np.random.default_rng(0)
    pairs = {(f"u{rng.integers(60)}", f"a{rng.integers(90)}") for _ in range(1500)}
    connection.executemany(
        "INSERT INTO ratings (user_id, artist_id, rating, plays, source_file, ingested_at) "
        "VALUES (?, ?, ?, ?, 'test', now())",
        [[user, artist, float(rng.integers(1, 11)) / 2, None] for user, artist in sorted(pairs)]
        # a play count only: not an explicit interaction
        + [["u0", "only-played", None, 7]],
    )
    interactions.update_indexes(connection, "explicit")
    yield connection
    connection.close()


def test_exported_interactions_are_the_matrix_the_local_backend_loads(con, tmp_path):
    folder = exchange.export_interactions(con, "explicit", tmp_path / "all")
    rows = pq.read_table(folder).to_pandas()
    matrix = interactions.load_matrix(con, "explicit").values.tocoo()
    assert len(rows) == matrix.nnz
    exported = sorted(zip(rows.user_idx, rows.item_idx, rows.value, strict=True))
    loaded = sorted(zip(matrix.row, matrix.col, matrix.data, strict=True))
    assert exported == loaded
    assert set(rows.dtypes.astype(str)) == {"int32", "float32"}


def test_a_spark_split_is_published_by_id_and_exported_by_part(con, tmp_path):
    everything = pq.read_table(exchange.export_interactions(con, "explicit", tmp_path / "a"))
    parts = np.where(np.arange(everything.num_rows) % 4 == 0, "test", "train")
    (tmp_path / "split").mkdir()
    pq.write_table(
        everything.select(["user_idx", "item_idx"]).append_column("part", pa.array(parts)),
        tmp_path / "split" / "part-0.parquet",
    )
    assert exchange.publish_split(con, tmp_path / "split") == everything.num_rows
    train, test = interactions.load_split(con, "explicit")
    for part, matrix in (("train", train), ("test", test)):
        exported = pq.read_table(
            exchange.export_interactions(con, "explicit", tmp_path / part, part=part)
        )
        assert exported.num_rows == matrix.nnz == int((parts == part).sum())


def test_the_streamed_seen_matrix_is_what_scipy_saves(con, tmp_path):
    path = tmp_path / "seen.npz"
    expected = interactions.load_matrix(con, "explicit").values
    assert interactions.write_seen_npz(con, "explicit", path) == expected.nnz
    seen = load_npz(path)
    assert seen.shape == expected.shape and seen.nnz == expected.nnz
    assert (seen != expected).nnz == 0
    np.testing.assert_array_equal(seen.indptr, expected.indptr)
