"""Spark's similar artists shrink by support as the local backend does: the same rows."""

import numpy as np
import pandas as pd
import pytest

from musicrec_assets.backends.spark import tables as spark_tables
from musicrec_assets.backends.spark.als import missing_spark_requirement
from musicrec_assets.backends.spark.factors import write_factor_model
from musicrec_assets.model.factors import FactorModel, TrainingParams
from musicrec_assets.model.sparse import from_triples
from musicrec_assets.serving.tables import listeners
from musicrec_assets.serving.topn import flatten_top_n, similar_items

_missing = missing_spark_requirement()
if _missing is not None:
    pytest.skip(f"Spark backend not testable here: {_missing}", allow_module_level=True)

pytestmark = pytest.mark.slow

N_USERS, N_ITEMS, N = 50, 80, 5


def test_similar_artists_on_spark_equal_the_local_shrunk_lists(spark, tmp_path):
    rng = np.random.default_rng(3)
    item_factors = rng.normal(size=(N_ITEMS, 4)).astype(np.float32)
    item_factors[10:20] = item_factors[10]  # one lone listener's artists: cosine 1
    model = FactorModel(
        params=TrainingParams(objective="ranking", rank=4, regularization=0.1),
        user_factors=rng.normal(size=(N_USERS, 4)).astype(np.float32),
        item_factors=item_factors,
    )
    rows = rng.integers(0, N_USERS, 600)
    cols = rng.integers(20, N_ITEMS, 600)
    rows, cols = (
        np.concatenate([rows, np.zeros(10, int)]),
        np.concatenate([cols, np.arange(10, 20)]),
    )
    seen = from_triples(rows, cols, np.ones(len(rows)), (N_USERS, N_ITEMS)).tocsr()
    seen.sum_duplicates()
    support = listeners(seen, N_ITEMS)
    index, similarity = similar_items(item_factors, N, support=support)
    expected = flatten_top_n(np.arange(N_ITEMS), np.arange(N_ITEMS), index, similarity)
    assert np.all(index[10:20, 0] >= 20)  # the lone listener's artists: not each other first

    stored = {"ranking": write_factor_model(model, tmp_path / "ranking")}
    seen_rows, seen_cols = seen.nonzero()
    seen_frame = spark.createDataFrame(
        pd.DataFrame(
            {"user_idx": seen_rows.astype(np.int32), "item_idx": seen_cols.astype(np.int32)}
        ),
        "user_idx int, item_idx int",
    )
    actual = spark_tables.similar_artists(spark, stored, seen_frame, N).toPandas()
    actual = actual.sort_values(["item_idx", "rank"]).reset_index(drop=True)
    np.testing.assert_array_equal(actual["item_idx"], expected[0])
    np.testing.assert_array_equal(actual["rank"], expected[1])
    np.testing.assert_array_equal(actual["similar_idx"], expected[2])
    np.testing.assert_allclose(actual["similarity"], expected[3], rtol=1e-5, atol=1e-6)
