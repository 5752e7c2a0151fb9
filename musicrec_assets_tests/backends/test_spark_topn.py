"""The Spark top-N frames against the numpy kernels: the same rows."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from musicrec_assets.backends.spark.als import missing_spark_requirement
from musicrec_assets.backends.spark.factors import write_factor_model
from musicrec_assets.backends.spark.topn import (
    predict_frame,
    similar_items_frame,
    top_n_items_frame,
    top_n_users_frame,
)
from musicrec_assets.model.baselines import fit_most_popular
from musicrec_assets.model.factors import FactorModel, TrainingParams
from musicrec_assets.model.sparse import from_triples
from musicrec_assets.serving.topn import flatten_top_n, similar_items, top_n_items, top_n_users

_missing = missing_spark_requirement()
if _missing is not None:
    pytest.skip(f"Spark backend not testable here: {_missing}", allow_module_level=True)

pytestmark = pytest.mark.slow

N_USERS, N_ITEMS, N = 200, 300, 10
# user 5 has seen all but three items (its list is padded), item 7 has zero factors
NEARLY_DONE_USER, ZERO_ITEM = 5, 7


@pytest.fixture(scope="module")
def seen():
    rng = np.random.default_rng(0)
    pairs = np.unique(rng.integers(0, N_USERS, 6000) * N_ITEMS + rng.integers(0, N_ITEMS, 6000))
    rows, cols = pairs // N_ITEMS, pairs % N_ITEMS
    rows = np.concatenate([rows, np.full(N_ITEMS - 3, NEARLY_DONE_USER)])
    cols = np.concatenate([cols, np.arange(3, N_ITEMS)])
    return from_triples(rows, cols, np.ones(len(rows)), (N_USERS, N_ITEMS)).astype(bool)


@pytest.fixture(scope="module")
def seen_frame(spark, seen):
    rows, cols = seen.nonzero()
    data = pd.DataFrame({"user_idx": rows.astype(np.int32), "item_idx": cols.astype(np.int32)})
    return spark.createDataFrame(data, "user_idx int, item_idx int").cache()


def biased_model():
    rng = np.random.default_rng(1)
    item_factors = rng.normal(size=(N_ITEMS, 6)).astype(np.float32)
    item_factors[ZERO_ITEM] = 0.0
    return FactorModel(
        params=TrainingParams(objective="rating", rank=6, regularization=0.1),
        user_factors=rng.normal(size=(N_USERS, 6)).astype(np.float32),
        item_factors=item_factors,
        global_mean=3.6,
        user_bias=rng.normal(0, 0.3, N_USERS).astype(np.float32),
        item_bias=rng.normal(0, 0.5, N_ITEMS).astype(np.float32),
    )


def popular_model(seen):
    # integer scores: ties everywhere, broken by the lower index
    return fit_most_popular(seen.astype(np.float64))


@pytest.fixture(scope="module", params=["biased", "most_popular"])
def models(request, seen, tmp_path_factory):
    model = biased_model() if request.param == "biased" else popular_model(seen)
    return model, write_factor_model(model, tmp_path_factory.mktemp(request.param))


def frame_of(spark, column, values):
    return spark.createDataFrame(
        pd.DataFrame({column: np.asarray(values, dtype=np.int32)}), f"{column} int"
    )


def assert_same_rows(actual, expected, columns):
    actual = actual.toPandas().sort_values(columns[:2]).reset_index(drop=True)
    query, rank, candidate, score = expected
    np.testing.assert_array_equal(actual[columns[0]], query)
    np.testing.assert_array_equal(actual[columns[1]], rank)
    np.testing.assert_array_equal(actual[columns[2]], candidate)
    np.testing.assert_allclose(actual[columns[3]], score, rtol=1e-5, atol=1e-5)


def test_top_n_items_frame_equals_top_n_items(spark, models, seen, seen_frame):
    model, stored = models
    users = np.array([0, 1, NEARLY_DONE_USER, 17, 42, 99, 150, 199])
    index, scores = top_n_items(model.user_vectors()[users], model.item_vectors(), seen[users], N)
    expected = flatten_top_n(users, np.arange(N_ITEMS), index, scores)
    assert (expected[0] == NEARLY_DONE_USER).sum() == 3

    actual = top_n_items_frame(stored, frame_of(spark, "user_idx", users), seen_frame, N)
    assert_same_rows(actual, expected, ["user_idx", "rank", "item_idx", "score"])


def test_top_n_users_frame_equals_top_n_users(spark, models, seen, seen_frame):
    model, stored = models
    items = np.array([0, 3, ZERO_ITEM, 50, 123, 299])
    listeners = seen.T.tocsr()[items]
    index, scores = top_n_users(model.item_vectors()[items], model.user_vectors(), N, listeners)
    expected = flatten_top_n(items, np.arange(N_USERS), index, scores)

    actual = top_n_users_frame(stored, frame_of(spark, "item_idx", items), seen_frame, N)
    assert_same_rows(actual, expected, ["item_idx", "rank", "user_idx", "score"])


def test_similar_items_frame_equals_similar_items(spark, models):
    model, stored = models
    index, similarity = similar_items(model.item_factors, N)
    expected = flatten_top_n(np.arange(N_ITEMS), np.arange(N_ITEMS), index, similarity)

    actual = similar_items_frame(stored, N)
    assert_same_rows(actual, expected, ["item_idx", "rank", "similar_idx", "similarity"])


def test_predict_frame_equals_predict(spark, models):
    model, stored = models
    rng = np.random.default_rng(2)
    users, items = rng.integers(0, N_USERS, 500), rng.integers(0, N_ITEMS, 500)
    pairs = spark.createDataFrame(
        pd.DataFrame({"user_idx": users.astype(np.int32), "item_idx": items.astype(np.int32)}),
        "user_idx int, item_idx int",
    )
    actual = predict_frame(stored, pairs).toPandas()
    expected = model.predict(actual["user_idx"].to_numpy(), actual["item_idx"].to_numpy())
    assert len(actual) == len(users)
    np.testing.assert_allclose(actual["prediction"], expected, rtol=1e-6, atol=1e-5)


def test_rows_not_stored_score_as_zero(spark, tmp_path, seen, seen_frame):
    model = biased_model()
    stored = write_factor_model(model, tmp_path / "model")
    # a fit that never saw users 0-9 stores no rows for them
    path = tmp_path / "model" / "users" / "part-0.parquet"
    users_table = pq.read_table(path)
    pq.write_table(users_table.filter(pc.field("idx") >= 10), path)
    unseen = replace(
        model,
        user_factors=np.where(np.arange(N_USERS)[:, None] < 10, 0.0, model.user_factors),
        user_bias=np.where(np.arange(N_USERS) < 10, 0.0, model.user_bias).astype(np.float32),
    )
    users = np.array([0, 3, 9, 10, 11])
    index, scores = top_n_items(unseen.user_vectors()[users], unseen.item_vectors(), seen[users], N)
    expected = flatten_top_n(users, np.arange(N_ITEMS), index, scores)

    actual = top_n_items_frame(stored, frame_of(spark, "user_idx", users), seen_frame, N)
    assert_same_rows(actual, expected, ["user_idx", "rank", "item_idx", "score"])
    pairs = spark.createDataFrame(
        pd.DataFrame({"user_idx": np.int32(users), "item_idx": np.int32([1, 2, 3, 4, 5])}),
        "user_idx int, item_idx int",
    )
    predicted = predict_frame(stored, pairs).toPandas()
    np.testing.assert_allclose(
        predicted["prediction"],
        unseen.predict(predicted["user_idx"], predicted["item_idx"]),
        rtol=1e-6,
        atol=1e-5,
    )
