"""The Spark splits, metrics and baselines against the local ones: the same rules, the same
numbers."""

import numpy as np
import pandas as pd
import pytest
from scipy.sparse import csr_matrix

from musicrec_assets.backends.spark.als import missing_spark_requirement
from musicrec_assets.backends.spark.baselines import fit_spark_baselines
from musicrec_assets.backends.spark.factors import write_factor_model
from musicrec_assets.backends.spark.metrics import evaluate_spark, ranked_users_frame
from musicrec_assets.backends.spark.split import (
    fold_labels,
    hold_out,
    kfold_frames,
)
from musicrec_assets.evaluation.metrics import evaluate
from musicrec_assets.evaluation.promotion import paired_noise, paired_standard_error
from musicrec_assets.model.baselines import fit_baselines, fit_most_popular
from musicrec_assets.model.explicit_als import fit_explicit_als
from musicrec_assets.model.factors import TrainingParams
from musicrec_assets.model.implicit_als import fit_implicit_als
from musicrec_assets.model.sparse import from_triples, to_triples

_missing = missing_spark_requirement()
if _missing is not None:
    pytest.skip(f"Spark backend not testable here: {_missing}", allow_module_level=True)

pytestmark = pytest.mark.slow

SCHEMA = "user_idx int, item_idx int, value float"
N_USERS, N_ITEMS = 300, 400


def skewed_pairs(rng, n_users, n_items, n_pairs):
    """Distinct (user, item) pairs with skewed user activity and item popularity, plus three
    users with fewer than five interactions."""
    activity = rng.lognormal(0.0, 0.8, n_users - 3)
    popularity = rng.lognormal(0.0, 1.2, n_items)
    rows = rng.choice(n_users - 3, size=3 * n_pairs, p=activity / activity.sum())
    cols = rng.choice(n_items, size=3 * n_pairs, p=popularity / popularity.sum())
    pairs = rng.permutation(np.unique(rows * n_items + cols))[:n_pairs]
    rows, cols = pairs // n_items, pairs % n_items
    light = np.repeat(np.arange(n_users - 3, n_users), [1, 2, 4])
    return np.concatenate([rows, light]), np.concatenate([cols, rng.integers(0, n_items, 7)])


def movielens_like(seed=0):
    """1-5 stars from biases and a rank-3 taste, as MovieLens ratings look."""
    rng = np.random.default_rng(seed)
    rows, cols = skewed_pairs(rng, N_USERS, N_ITEMS, 9000)
    stars = (
        3.5
        + rng.normal(0.0, 0.4, N_USERS)[rows]
        + rng.normal(0.0, 0.5, N_ITEMS)[cols]
        + np.einsum(
            "ij,ij->i",
            rng.normal(0, 0.5, (N_USERS, 3))[rows],
            rng.normal(0, 0.5, (N_ITEMS, 3))[cols],
        )
        + rng.normal(0.0, 0.6, len(rows))
    )
    return from_triples(rows, cols, np.clip(np.rint(stars), 1, 5), (N_USERS, N_ITEMS))


def play_counts(seed=1):
    rng = np.random.default_rng(seed)
    rows, cols = skewed_pairs(rng, N_USERS, N_ITEMS, 8000)
    return from_triples(rows, cols, np.ceil(rng.lognormal(2.0, 1.0, len(rows))), (N_USERS, N_ITEMS))


def to_frame(spark, matrix):
    rows, cols, values = to_triples(matrix)
    data = pd.DataFrame(
        {
            "user_idx": rows.astype(np.int32),
            "item_idx": cols.astype(np.int32),
            "value": values.astype(np.float32),
        }
    )
    return spark.createDataFrame(data, SCHEMA)


def to_csr(frame, shape=(N_USERS, N_ITEMS)):
    data = frame.select("user_idx", "item_idx", "value").toPandas()
    return from_triples(
        data["user_idx"].to_numpy(),
        data["item_idx"].to_numpy(),
        data["value"].to_numpy(np.float64),
        shape,
    )


@pytest.fixture(scope="module")
def data(spark):
    """Per kind, the interactions frame and its hold-out split as frames and as matrices."""
    splits = {}
    for kind, matrix in (("ratings", movielens_like()), ("plays", play_counts())):
        frame = to_frame(spark, matrix).cache()
        parts = hold_out(frame).frame.cache()
        train = parts.where("part = 'train'").drop("part").cache()
        test = parts.where("part = 'test'").drop("part").cache()
        splits[kind] = {
            "matrix": matrix,
            "frame": frame,
            "train": train,
            "test": test,
            "train_csr": to_csr(train),
            "test_csr": to_csr(test),
        }
    return splits


def test_hold_out_follows_the_rule_of_train_test_split(data):
    split = hold_out(data["ratings"]["frame"])
    labelled = split.labelled.toPandas()
    per_user = labelled.groupby("user_idx")["part"]
    n = per_user.size()
    held_out = per_user.apply(lambda part: int((part != "train").sum()))
    expected = np.where(n >= 5, np.floor(0.2 * n + 0.5), 0).astype(int)
    np.testing.assert_array_equal(held_out.to_numpy(), expected)
    assert (n < 5).sum() >= 3

    train_items = set(labelled.loc[labelled["part"] == "train", "item_idx"])
    assert set(labelled.loc[labelled["part"] == "test", "item_idx"]) <= train_items
    cold = labelled[labelled["part"] == "cold"]
    assert len(cold) > 0 and not set(cold["item_idx"]) & train_items
    assert split.frame.where("part = 'cold'").count() == 0


def test_hold_out_is_seeded(data):
    frame = data["ratings"]["frame"]

    def parts(seed):
        split = hold_out(frame, seed=seed).frame.toPandas()
        return split.sort_values(["user_idx", "item_idx"]).reset_index(drop=True)

    pd.testing.assert_frame_equal(parts(42), parts(42))
    assert not parts(42)["part"].equals(parts(7)["part"])


def test_folds_validate_every_eligible_interaction_once(data):
    train = data["ratings"]["train"]
    labelled = fold_labels(train, n_folds=3, seed=42).toPandas()
    counts = labelled.groupby("user_idx")["fold"].transform("size")
    assert (labelled.loc[counts < 5, "fold"] == -1).all()
    eligible = labelled[counts >= 5]
    assert eligible["fold"].between(0, 2).all()
    sizes = eligible.groupby(["user_idx", "fold"]).size().unstack(fill_value=0)
    assert (sizes.max(axis=1) - sizes.min(axis=1)).max() <= 1

    dropped = 0
    for fold, (fold_train, validation) in enumerate(kfold_frames(train, n_folds=3, seed=42)):
        fold_train, validation = fold_train.toPandas(), validation.toPandas()
        assert pairs(fold_train) == pairs(labelled[labelled["fold"] != fold])
        in_fold = labelled[labelled["fold"] == fold]
        warm = in_fold["item_idx"].isin(set(fold_train["item_idx"]))
        assert pairs(validation) == pairs(in_fold[warm])
        dropped += int((~warm).sum())
    assert dropped > 0


def pairs(frame):
    return set(zip(frame["user_idx"], frame["item_idx"], strict=True))


def ratings_model(train):
    params = TrainingParams(objective="rating", rank=4, regularization=0.1, iterations=3)
    return fit_explicit_als(train, params)


def plays_model(train):
    params = TrainingParams(objective="ranking", rank=8, regularization=1.0, iterations=3)
    return fit_implicit_als(train, params)


@pytest.mark.parametrize(
    ("kind", "fit", "sample"),
    [
        ("ratings", ratings_model, 0),
        ("ratings", fit_most_popular, 0),
        ("ratings", plays_model, 0),
        ("plays", plays_model, 0),
        ("plays", fit_most_popular, 0),
        ("ratings", ratings_model, 50),
        ("plays", plays_model, 50),
    ],
    ids=lambda value: getattr(value, "__name__", str(value)),
)
def test_evaluate_spark_equals_evaluate(data, tmp_path, kind, fit, sample):
    split = data[kind]
    feedback = "explicit" if kind == "ratings" else "implicit"
    model = fit(split["train_csr"])
    stored = write_factor_model(model, tmp_path / "model")
    ranked = ranked_users_frame(split["test"], sample, seed=3) if sample else None
    ranked_rows = None if ranked is None else np.sort(ranked.toPandas()["user_idx"].to_numpy())
    if sample:
        assert len(ranked_rows) == sample

    # on ratings a rating model judges the lists (predicted_dislikes_at_10)
    judge = ratings_model(split["train_csr"]) if kind == "ratings" else None
    expected = evaluate(
        model,
        split["train_csr"],
        split["test_csr"],
        feedback,
        k=10,
        ranked=ranked_rows,
        judge=judge,
    )
    stored_judge = None if judge is None else write_factor_model(judge, tmp_path / "judge")
    actual = evaluate_spark(
        stored, split["train"], split["test"], feedback, k=10, ranked=ranked, judge=stored_judge
    )
    assert list(actual) == list(expected)
    assert ("predicted_dislikes_at_10" in actual) == (judge is not None)
    for name, value in expected.items():
        assert actual[name] == pytest.approx(value, abs=1e-6), name


def test_the_gate_s_held_out_noise_on_spark_is_the_local_one(data, tmp_path):
    split = data["ratings"]
    models = {
        "ranking": plays_model(split["train_csr"]),
        "most_popular": fit_most_popular(split["train_csr"]),
    }
    stored = {name: write_factor_model(model, tmp_path / name) for name, model in models.items()}
    ranked = ranked_users_frame(split["test"], 50, seed=3)
    ranked_rows = np.sort(ranked.toPandas()["user_idx"].to_numpy())
    expected = paired_noise(
        models, "ranking", ("most_popular",), split["train_csr"], split["test_csr"], ranked_rows
    )
    own, popular = (
        evaluate_spark(
            stored[name], split["train"], split["test"], "explicit", ranked=ranked, return_ndcg=True
        )[1]
        for name in ("ranking", "most_popular")
    )
    assert len(own) == len(ranked_rows)
    assert expected["most_popular"] > 0
    assert paired_standard_error(own, popular) == pytest.approx(expected["most_popular"], rel=1e-6)


def test_ranked_users_frame_takes_everyone_without_a_limit(data):
    test = data["plays"]["test"]
    users = set(data["plays"]["test_csr"].nonzero()[0])
    assert set(ranked_users_frame(test, 0, seed=1).toPandas()["user_idx"]) == users
    assert set(ranked_users_frame(test, 10_000, seed=1).toPandas()["user_idx"]) == users


@pytest.mark.parametrize("kind", ["ratings", "plays"])
def test_spark_baselines_equal_the_local_ones(data, tmp_path, kind):
    split = data[kind]
    feedback = "explicit" if kind == "ratings" else "implicit"
    stored = fit_spark_baselines(split["train"], feedback, tmp_path, N_USERS, N_ITEMS)
    local = fit_baselines(csr_matrix(split["train_csr"]), feedback)

    assert list(stored) == list(local)
    for name, model in local.items():
        spark_model = stored[name].to_factor_model()
        assert spark_model.params == model.params, name
        assert spark_model.global_mean == pytest.approx(model.global_mean, abs=1e-9)
        np.testing.assert_allclose(
            spark_model.user_vectors() @ spark_model.item_vectors().T,
            model.user_vectors() @ model.item_vectors().T,
            rtol=1e-6,
            atol=1e-5,
            err_msg=name,
        )


def test_evaluate_spark_ranks_held_out_users_without_training_rows(data, tmp_path):
    split = data["ratings"]
    users = np.unique(split["test_csr"].nonzero()[0])[:5]
    train = split["train"].where(~split["train"]["user_idx"].isin(users.tolist()))
    train_csr = to_csr(train)
    model = ratings_model(split["train_csr"])
    stored = write_factor_model(model, tmp_path / "model")

    expected = evaluate(model, train_csr, split["test_csr"], "explicit")
    actual = evaluate_spark(stored, train, split["test"], "explicit")
    for name, value in expected.items():
        assert actual[name] == pytest.approx(value, abs=1e-6), name
