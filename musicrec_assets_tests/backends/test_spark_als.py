"""The Spark MLlib backend against the local ones: same objective, same quality, same model."""

import ctypes.util
import importlib.util
import shutil
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.sparse import csr_matrix

from musicrec_assets.backends.spark import als as spark_als
from musicrec_assets.backends.spark.als import (
    fit_spark_als,
    fit_spark_frame,
    missing_spark_requirement,
    scale_confidence_frame,
    spark_session,
)
from musicrec_assets.backends.spark.factors import SparkFactors
from musicrec_assets.evaluation.metrics import evaluate
from musicrec_assets.evaluation.split import train_test_split
from musicrec_assets.evaluation.tuning import cross_validate, grid
from musicrec_assets.model.baselines import fit_bias_model
from musicrec_assets.model.confidence import SCHEMES, fit_confidence
from musicrec_assets.model.explicit_als import fit_explicit_als
from musicrec_assets.model.factors import FactorModel, TrainingParams
from musicrec_assets.model.implicit_als import fit_implicit_als
from musicrec_assets.model.sparse import from_triples, to_triples

SAMPLE_RATINGS = (
    Path(__file__).resolve().parents[2] / "musicrec_assets/sample_data/ratings/ratings.jsonl.gz"
)

_missing = missing_spark_requirement()
if _missing is not None:
    pytest.skip(f"Spark backend not testable here: {_missing}", allow_module_level=True)

pytestmark = pytest.mark.slow


def sample_ratings() -> csr_matrix:
    ratings = pd.read_json(SAMPLE_RATINGS, lines=True)
    users, user_index = np.unique(ratings["user_id"], return_inverse=True)
    artists, artist_index = np.unique(ratings["artist_id"], return_inverse=True)
    return from_triples(
        user_index, artist_index, ratings["rating"].to_numpy(float), (len(users), len(artists))
    )


def movielens_like(n_users=600, n_items=1500, n_ratings=60_000, rank=5, seed=0) -> csr_matrix:
    """1-5 star ratings, rounded from 3.5 + b_u + b_i + x_u·y_i + noise, on pairs drawn with
    skewed user activity and item popularity, as in MovieLens."""
    rng = np.random.default_rng(seed)
    activity = rng.lognormal(0.0, 0.8, n_users)
    popularity = rng.lognormal(0.0, 1.0, n_items)
    rows = rng.choice(n_users, size=3 * n_ratings, p=activity / activity.sum())
    cols = rng.choice(n_items, size=3 * n_ratings, p=popularity / popularity.sum())
    pairs = rng.permutation(np.unique(rows * n_items + cols))[:n_ratings]
    rows, cols = pairs // n_items, pairs % n_items
    users = rng.normal(0.0, 0.5, (n_users, rank))
    items = rng.normal(0.0, 0.5, (n_items, rank))
    stars = (
        3.5
        + rng.normal(0.0, 0.4, n_users)[rows]
        + rng.normal(0.0, 0.5, n_items)[cols]
        + np.einsum("ij,ij->i", users[rows], items[cols])
        + rng.normal(0.0, 0.6, len(rows))
    )
    return from_triples(rows, cols, np.clip(np.rint(stars), 1, 5), (n_users, n_items))


def generated_plays(n_users=1000, n_items=2000, per_user=40, rank=8, seed=0) -> csr_matrix:
    """Play counts of users who pick artists by a planted taste plus popularity and play the
    ones they like more often."""
    rng = np.random.default_rng(seed)
    taste = rng.normal(size=(n_users, rank)) @ rng.normal(size=(n_items, rank)).T
    affinity = 2.0 * taste / np.sqrt(rank) + rng.normal(size=n_items)
    rows, cols = [], []
    for user in range(n_users):
        weights = np.exp(affinity[user] - affinity[user].max())
        n_artists = max(5, int(rng.poisson(per_user)))
        rows.append(np.full(n_artists, user))
        cols.append(rng.choice(n_items, n_artists, replace=False, p=weights / weights.sum()))
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    liking = (affinity[rows, cols] - affinity.mean()) / affinity.std()
    plays = np.ceil(rng.lognormal(2.0 + 0.5 * liking, 1.0))
    return from_triples(rows, cols, plays, (n_users, n_items))


def lastfm_plays(lastfm_dir: Path) -> csr_matrix:
    plays = pd.read_csv(lastfm_dir / "user_artists.dat", sep="\t")
    users, user_index = np.unique(plays["userID"], return_inverse=True)
    artists, artist_index = np.unique(plays["artistID"], return_inverse=True)
    return from_triples(
        user_index, artist_index, plays["weight"].to_numpy(float), (len(users), len(artists))
    )


@pytest.mark.parametrize("dataset", [sample_ratings, movielens_like], ids=lambda f: f.__name__)
def test_explicit_matches_local_als_in_its_spark_setting(spark, tmp_path, dataset):
    matrix = dataset()
    split = train_test_split(matrix, seed=42)
    # λ 0.1 converges to equally good optima from both initializations; at λ 0.05 the sample
    # (most artists rated once or twice) overfits and the two land 5% apart
    params = TrainingParams(
        objective="rating",
        rank=10,
        regularization=0.1,
        iterations=15,
        use_biases=False,
        weighted_regularization=True,
    )

    spark_model = fit_spark_als(spark, split.train, params, tmp_path)
    local_model = fit_explicit_als(split.train, params)

    spark_rmse = evaluate(spark_model, split.train, split.test, "explicit")["rmse"]
    local_rmse = evaluate(local_model, split.train, split.test, "explicit")["rmse"]
    assert local_rmse == pytest.approx(spark_rmse, rel=0.01)


@pytest.mark.parametrize("dataset", [sample_ratings, movielens_like], ids=lambda f: f.__name__)
def test_explicit_with_biases_matches_local_als_and_beats_the_bias_baseline(
    spark, tmp_path, dataset
):
    matrix = dataset()
    split = train_test_split(matrix, seed=42)
    # rank 10, λ 0.1 of DEFAULT_EXPLICIT_GRID, the objective the local backend tunes
    params = TrainingParams(
        objective="rating",
        rank=10,
        regularization=0.1,
        iterations=15,
        use_biases=True,
        weighted_regularization=True,
    )

    spark_model = fit_spark_als(spark, split.train, params, tmp_path)
    local_model = fit_explicit_als(split.train, params)

    assert spark_model.has_biases
    assert spark_model.global_mean == pytest.approx(split.train.data.mean())
    spark_rmse = evaluate(spark_model, split.train, split.test, "explicit")["rmse"]
    local_rmse = evaluate(local_model, split.train, split.test, "explicit")["rmse"]
    bias_rmse = evaluate(fit_bias_model(split.train), split.train, split.test, "explicit")["rmse"]
    assert spark_rmse == pytest.approx(local_rmse, rel=0.01)
    assert spark_rmse < bias_rmse
    assert not list(tmp_path.iterdir()), "the Parquet exchange folder is left behind"


def interactions_frame(spark, matrix: csr_matrix):
    """The ``user_idx INT, item_idx INT, value FLOAT`` frame of a matrix's stored entries."""
    rows, cols, values = to_triples(matrix)
    triples = pd.DataFrame(
        {
            "user_idx": rows.astype(np.int32),
            "item_idx": cols.astype(np.int32),
            "value": values.astype(np.float32),
        }
    )
    return spark.createDataFrame(triples, schema="user_idx INT, item_idx INT, value FLOAT")


def frame_matrix(frame, shape) -> csr_matrix:
    triples = frame.toPandas()
    return from_triples(
        triples["user_idx"].to_numpy(), triples["item_idx"].to_numpy(), triples["value"], shape
    )


@pytest.mark.parametrize("scheme", SCHEMES)
def test_confidence_scaled_in_spark_equals_the_local_scaler(spark, scheme):
    plays = generated_plays(n_users=60, n_items=80, per_user=10)
    # a user without plays and an artist nobody played count in bm25's average and idf
    n_users, n_items = plays.shape[0] + 1, plays.shape[1] + 1
    plays = from_triples(*to_triples(plays), (n_users, n_items))
    local = fit_confidence(plays, scheme, alpha=0.5)

    scaled, scaler = scale_confidence_frame(
        interactions_frame(spark, plays), scheme, 0.5, n_users, n_items
    )

    np.testing.assert_allclose(
        frame_matrix(scaled, plays.shape).toarray(), local.scale(plays).toarray(), rtol=1e-9
    )
    assert (scaler.scheme, scaler.alpha) == (local.scheme, local.alpha)
    assert scaler.extras().keys() == local.extras().keys()
    for name, values in local.extras().items():
        np.testing.assert_allclose(scaler.extras()[name], values, rtol=1e-12)


def test_scale_confidence_frame_rejects_an_unknown_scheme(spark):
    with pytest.raises(ValueError, match="unknown confidence scheme"):
        scale_confidence_frame(interactions_frame(spark, csr_matrix(np.eye(2))), "tf", 1, 2, 2)


@pytest.mark.parametrize("objective", ["rating", "ranking"])
def test_fit_spark_frame_writes_a_model_folder_that_scores_like_the_factor_model(
    spark, tmp_path, objective
):
    if objective == "rating":
        matrix = movielens_like(n_users=80, n_items=120, n_ratings=2000)
        params = TrainingParams(objective="rating", rank=4, regularization=0.1, iterations=5)
    else:
        matrix = generated_plays(n_users=80, n_items=120, per_user=10)
        params = TrainingParams(
            objective="ranking",
            rank=4,
            regularization=0.1,
            iterations=5,
            alpha=0.02,
            confidence="bm25",
        )
    folder = tmp_path / "model"

    written = fit_spark_frame(
        spark, interactions_frame(spark, matrix), params, folder, *matrix.shape
    )

    stored = SparkFactors.load(folder)
    assert stored == written
    assert (stored.n_users, stored.n_items) == matrix.shape and stored.params == params
    for side in ("users", "items"):
        n_files = len(list((folder / side).glob("*.parquet")))
        assert 1 <= n_files <= spark.sparkContext.defaultParallelism
    model = stored.to_factor_model()
    assert model.user_factors.shape == (matrix.shape[0], params.rank)
    assert model.item_factors.shape == (matrix.shape[1], params.rank)
    if objective == "rating":
        assert stored.has_biases and model.has_biases
        assert model.global_mean == pytest.approx(matrix.data.mean())
        assert model.user_bias.any() and model.item_bias.any()
        assert not (folder / "extras.npz").exists()
    else:
        assert not stored.has_biases and not model.has_biases
        local_extras = fit_confidence(matrix, "bm25", params.alpha).extras()
        assert model.extras.keys() == local_extras.keys()
        for name, values in local_extras.items():
            np.testing.assert_allclose(model.extras[name], values, rtol=1e-12)
    scores = stored.vectors("users") @ stored.vectors("items").T
    np.testing.assert_allclose(
        scores, model.user_vectors() @ model.item_vectors().T, rtol=1e-6, atol=1e-6
    )
    rows, cols, _ = to_triples(matrix)
    np.testing.assert_allclose(scores[rows, cols], model.predict(rows, cols), rtol=1e-5, atol=1e-5)


def assert_implicit_parity(spark, workdir, plays, rank, implicit_regularization):
    """NDCG@10 of ``implicit`` at a plain λ and of Spark at that λ divided by the mean number
    of training entries per user (Spark multiplies its λ by each row's count) are within 10%;
    everything else, confidence 1 + α·log1p(plays) included, is the same."""
    split = train_test_split(plays, seed=42)
    params = TrainingParams(
        objective="ranking",
        rank=rank,
        regularization=implicit_regularization,
        iterations=15,
        alpha=1.0,
        confidence="log1p",
    )
    spark_params = replace(
        params, regularization=implicit_regularization * plays.shape[0] / split.train.nnz
    )

    local_model = fit_implicit_als(split.train, params)
    spark_model = fit_spark_als(spark, split.train, spark_params, workdir)

    local_ndcg = evaluate(local_model, split.train, split.test, "implicit")["ndcg_at_10"]
    spark_ndcg = evaluate(spark_model, split.train, split.test, "implicit")["ndcg_at_10"]
    assert local_ndcg == pytest.approx(spark_ndcg, rel=0.1)


def test_implicit_matches_implicit_on_generated_plays(spark, tmp_path):
    # λ 10 is near the top of implicit's NDCG curve on this set
    assert_implicit_parity(
        spark, tmp_path, generated_plays(), rank=16, implicit_regularization=10.0
    )


def test_implicit_matches_implicit_on_lastfm(spark, tmp_path, lastfm_dir):
    # λ 30 is near the top of implicit's NDCG curve on Last.fm-2k (see test_tuning)
    assert_implicit_parity(
        spark, tmp_path, lastfm_plays(lastfm_dir), rank=32, implicit_regularization=30.0
    )


def test_model_has_the_local_backends_shape_and_round_trips(spark, tmp_path):
    # user 3 and artist 4 have no plays: Spark never sees them
    plays = csr_matrix(
        np.array(
            [
                [5, 0, 2, 9, 0, 1],
                [0, 3, 7, 0, 0, 4],
                [8, 1, 0, 2, 0, 0],
                [0, 0, 0, 0, 0, 0],
                [1, 6, 0, 3, 0, 2],
            ],
            dtype=float,
        )
    )
    user_ids = np.array(["ann", "bob", "cy", "dee", "eve"])
    item_ids = np.array([f"artist-{i}" for i in range(6)])
    params = TrainingParams(
        objective="ranking",
        rank=3,
        regularization=0.1,
        iterations=5,
        confidence="bm25",
        alpha=0.1,
    )
    model = fit_spark_als(spark, plays, params, tmp_path).with_ids(user_ids, item_ids)
    local = fit_implicit_als(plays, params).with_ids(user_ids, item_ids)

    assert model.params == params
    for name in ("user_ids", "item_ids", "user_factors", "item_factors"):
        spark_array, local_array = getattr(model, name), getattr(local, name)
        assert spark_array.shape == local_array.shape and spark_array.dtype == local_array.dtype
    np.testing.assert_array_equal(model.user_ids, user_ids)
    np.testing.assert_array_equal(model.item_ids, item_ids)
    assert not model.user_factors[3].any() and not model.item_factors[4].any()
    assert model.user_factors[[0, 1, 2, 4]].any(axis=1).all()
    assert model.user_bias is None and model.item_bias is None and model.global_mean == 0.0
    assert model.extras.keys() == local.extras.keys()
    for name, values in local.extras.items():
        np.testing.assert_allclose(model.extras[name], values)
    assert not list(tmp_path.iterdir()), "the Parquet exchange folder is left behind"

    loaded = FactorModel.load(model.save(tmp_path / "spark_model"))
    assert loaded.params == model.params
    np.testing.assert_array_equal(loaded.user_factors, model.user_factors)
    np.testing.assert_array_equal(loaded.item_factors, model.item_factors)
    np.testing.assert_array_equal(loaded.item_ids, model.item_ids)
    for name, values in model.extras.items():
        np.testing.assert_array_equal(loaded.extras[name], values)


def test_cross_validation_with_spark_ranks_candidates_like_the_local_search(spark, tmp_path):
    matrix = movielens_like(n_users=200, n_items=300, n_ratings=8000)
    base = TrainingParams(
        objective="rating", rank=5, regularization=0.1, iterations=10, use_biases=False
    )
    candidates = grid({"regularization": [5.0, 0.1]})
    calls = []

    result = cross_validate(
        matrix,
        base,
        candidates,
        feedback="explicit",
        n_folds=2,
        on_trial=lambda *a: calls.append(a),
        fit=partial(fit_spark_als, spark, workdir=tmp_path),
    )
    local = cross_validate(matrix, base, candidates, feedback="explicit", n_folds=2)

    assert result.primary_metric == "rmse"
    assert [trial.params for trial in result.trials] == [trial.params for trial in local.trials]
    assert result.best.params.regularization == 0.1
    for spark_trial, local_trial in zip(result.trials, local.trials, strict=True):
        assert len(spark_trial.fold_metrics) == 2
        assert spark_trial.mean_metrics["rmse"] == pytest.approx(
            local_trial.mean_metrics["rmse"], rel=0.02
        )
    assert [(number, trial.index) for number, trial in calls] == [(1, 0), (2, 1)]


@pytest.mark.parametrize("objective", ["rating", "ranking"])
def test_rejects_unweighted_regularization(spark, tmp_path, objective):
    params = TrainingParams(
        objective=objective, rank=2, regularization=0.1, weighted_regularization=False
    )
    with pytest.raises(ValueError, match="Spark's ALS always scales λ"):
        fit_spark_als(spark, csr_matrix(np.eye(3)), params, tmp_path)


def test_missing_java_is_one_line_naming_the_package(monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(shutil, "which", lambda _name, *args, **kwargs: None)
    with pytest.raises(RuntimeError) as error, spark_session():
        pass
    message = str(error.value)
    assert "apt-get install openjdk-17-jre-headless" in message and "\n" not in message


def test_missing_pyspark_is_one_line_naming_the_extra(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        spark_als.importlib.util,
        "find_spec",
        lambda name, *args: None if name == "pyspark" else find_spec(name, *args),
    )
    with pytest.raises(RuntimeError) as error, spark_session():
        pass
    message = str(error.value)
    assert "pip install 'musicrec[spark]'" in message and "\n" not in message


def test_als_runs_on_the_systems_blas_and_lapack_where_they_are_installed(spark):
    found = spark_als.linear_algebra(spark)
    # what the JVM's dlopen finds: ldconfig's libblas.so.3 and liblapack.so.3
    if ctypes.util.find_library("blas") and ctypes.util.find_library("lapack"):
        assert found == spark_als.NATIVE_LINEAR_ALGEBRA
    else:  # Java code, and a warning at the session's start that names what to install
        assert found[0] in ("VectorBLAS", "F2jBLAS") and found[1] == "F2jLAPACK"
