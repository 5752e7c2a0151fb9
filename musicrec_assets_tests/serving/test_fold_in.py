"""Fold-in of new users and artists, and explanations."""

from __future__ import annotations

import dataclasses
import gc

import numpy as np
import pytest
from implicit.cpu.als import AlternatingLeastSquares
from scipy.sparse import csr_matrix
from threadpoolctl import threadpool_limits

from musicrec_assets.model.confidence import ConfidenceScaler
from musicrec_assets.model.explicit_als import fit_explicit_als
from musicrec_assets.model.factors import FactorModel, TrainingParams
from musicrec_assets.model.implicit_als import fit_implicit_als
from musicrec_assets.serving import fold_in
from musicrec_assets.serving.fold_in import (
    explain,
    fold_in_item,
    fold_in_user,
    fold_in_users,
    recommend_new_user,
    recommend_new_users,
)

N_USERS, N_ITEMS = 200, 90


def _low_rank_interactions(seed: int = 0):
    rng = np.random.default_rng(seed)
    user_taste = rng.standard_normal((N_USERS, 3))
    item_taste = rng.standard_normal((N_ITEMS, 3))
    rows, cols = np.nonzero(rng.random((N_USERS, N_ITEMS)) < 0.2)
    affinity = np.einsum("ij,ij->i", user_taste[rows], item_taste[cols])
    ratings = np.clip(np.round(3.0 + affinity + 0.3 * rng.standard_normal(len(rows))), 1, 5)
    plays = np.maximum(1, np.round(np.exp(1.0 + 0.5 * affinity))).astype(np.float64)
    shape = (N_USERS, N_ITEMS)
    return csr_matrix((ratings, (rows, cols)), shape), csr_matrix((plays, (rows, cols)), shape)


RATINGS, PLAYS = _low_rank_interactions()
USER_IDS = np.array([f"u{i}" for i in range(N_USERS)])
ITEM_IDS = np.array([f"a{i}" for i in range(N_ITEMS)])


@pytest.fixture(
    scope="module",
    params=[(True, True), (True, False), (False, True), (False, False)],
    ids=["wr-biases", "wr", "biases", "plain"],
)
def explicit_model(request) -> FactorModel:
    weighted, biases = request.param
    params = TrainingParams(
        objective="rating",
        rank=6,
        regularization=0.05 if weighted else 1.0,
        iterations=80,
        weighted_regularization=weighted,
        use_biases=biases,
    )
    # exact half-steps (rank + 1 CG steps solve each row exactly): fold-in solves one exactly
    return fit_explicit_als(RATINGS, params, cg_steps=params.rank + 1).with_ids(USER_IDS, ITEM_IDS)


@pytest.fixture(scope="module", params=["log1p", "bm25"])
def implicit_model(request) -> FactorModel:
    params = TrainingParams(
        objective="ranking",
        rank=6,
        regularization=0.1,
        iterations=40,
        alpha=2.0,
        confidence=request.param,
    )
    return fit_implicit_als(PLAYS, params).with_ids(USER_IDS, ITEM_IDS)


def _implicit_twin(model: FactorModel) -> AlternatingLeastSquares:
    """implicit's own model object holding our factors; fed confidences, hence alpha=1."""
    with threadpool_limits(1, "blas"):
        twin = AlternatingLeastSquares(
            factors=model.params.rank, regularization=model.params.regularization, alpha=1.0
        )
    twin.user_factors = model.user_factors.copy()
    twin.item_factors = model.item_factors.copy()
    return twin


def _confidence(model: FactorModel, plays: csr_matrix) -> csr_matrix:
    params = model.params
    return ConfidenceScaler.from_extras(params.confidence, params.alpha, model.extras).transform(
        plays
    )


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_explicit_fold_in_reproduces_trained_users(explicit_model):
    for user in range(0, N_USERS, 20):
        history = RATINGS[user]
        folded = fold_in_user(explicit_model, history.indices, history.data)
        trained = explicit_model.user_factors[user]
        assert _cosine(folded.factors, trained) > 0.99
        assert np.linalg.norm(folded.factors - trained) < 0.05 * np.linalg.norm(trained)
        if explicit_model.has_biases:
            assert folded.bias == pytest.approx(explicit_model.user_bias[user], abs=0.02)
        else:
            assert folded.bias is None


def test_explicit_item_fold_in_reproduces_trained_items(explicit_model):
    # training ends with the item half-step, so this one is exact
    by_item = RATINGS.T.tocsr()
    for item in range(0, N_ITEMS, 15):
        folded = fold_in_item(explicit_model, by_item[item].indices, by_item[item].data)
        np.testing.assert_allclose(folded.factors, explicit_model.item_factors[item], atol=1e-4)
        if explicit_model.has_biases:
            assert folded.bias == pytest.approx(explicit_model.item_bias[item], abs=1e-4)


def test_implicit_fold_in_is_implicits_recalculate_user(implicit_model):
    twin = _implicit_twin(implicit_model)
    confidence = _confidence(implicit_model, PLAYS)
    for user in range(0, N_USERS, 20):
        history = PLAYS[user]
        folded = fold_in_user(implicit_model, history.indices, history.data)
        assert folded.bias is None
        np.testing.assert_allclose(
            folded.factors, twin.recalculate_user(user, confidence[user]), rtol=1e-4, atol=1e-5
        )
        assert _cosine(folded.factors, implicit_model.user_factors[user]) > 0.99


def test_implicit_fold_in_of_a_spark_model_scales_lambda_by_the_users_count(implicit_model):
    assert not implicit_model.params.weighted_regularization  # implicit's plain λ
    spark_like = dataclasses.replace(
        implicit_model,
        params=dataclasses.replace(implicit_model.params, weighted_regularization=True),
    )
    items = implicit_model.item_factors.astype(np.float64)
    for user in range(0, N_USERS, 25):
        history = PLAYS[user]
        confidence = _confidence(implicit_model, history).toarray().ravel()
        weights = np.where(confidence > 0, confidence, 1.0)  # unobserved: c = 1, p = 0
        preference = (confidence > 0).astype(np.float64)
        penalty = implicit_model.params.regularization * history.nnz
        expected = np.linalg.solve(
            items.T @ (items * weights[:, None]) + penalty * np.eye(items.shape[1]),
            items.T @ (weights * preference),
        )
        folded = fold_in_user(spark_like, history.indices, history.data)
        np.testing.assert_allclose(folded.factors, expected, rtol=1e-6, atol=1e-9)


def test_implicit_item_fold_in(implicit_model):
    by_item = PLAYS.T.tocsr()
    if implicit_model.params.confidence == "bm25":
        with pytest.raises(ValueError, match="bm25"):
            fold_in_item(implicit_model, by_item[0].indices, by_item[0].data)
        return
    twin = _implicit_twin(implicit_model)
    confidence_by_item = _confidence(implicit_model, by_item)
    for item in range(0, N_ITEMS, 15):
        folded = fold_in_item(implicit_model, by_item[item].indices, by_item[item].data)
        expected = twin.recalculate_item(item, confidence_by_item[item])
        np.testing.assert_allclose(folded.factors, expected, rtol=1e-4, atol=1e-5)
        assert _cosine(folded.factors, implicit_model.item_factors[item]) > 0.99


def test_batch_fold_in_matches_single_users(implicit_model):
    batch = fold_in_users(implicit_model, PLAYS[:30])
    for user in (0, 11, 29):
        single = fold_in_user(implicit_model, PLAYS[user].indices, PLAYS[user].data)
        np.testing.assert_allclose(batch.factors[user], single.factors, rtol=1e-6)


@pytest.mark.parametrize(
    ("items", "values", "message"),
    [
        ([], [], "empty"),
        ([1, 2], [3.0], "one value per index"),
        ([1, 2], [[3.0, 4.0]], "one value per index"),
        ([1, N_ITEMS], [3.0, 4.0], r"\[0, 90\)"),
        ([-1], [3.0], r"\[0, 90\)"),
        ([1.0], [3.0], "integer"),
        ([4, 4], [3.0, 5.0], "twice"),
        ([4], [np.nan], "finite"),
    ],
)
def test_fold_in_rejects_bad_input(explicit_model, items, values, message):
    with pytest.raises(ValueError, match=message):
        fold_in_user(explicit_model, np.array(items), np.array(values))


def test_batch_fold_in_rejects_empty_rows(implicit_model):
    with pytest.raises(ValueError, match=r"rows \[1\] have no interactions"):
        fold_in_users(implicit_model, csr_matrix(np.array([[1.0] + [0.0] * 89, [0.0] * 90])))


def test_recommend_new_user_excludes_history_and_scores_by_dot_product(explicit_model):
    history = RATINGS[3]
    index, scores = recommend_new_user(explicit_model, history.indices, history.data, n=20)
    assert not np.isin(index, history.indices).any()
    folded = fold_in_user(explicit_model, history.indices, history.data)
    expected = explicit_model.item_factors[index] @ folded.factors
    if explicit_model.has_biases:
        expected += explicit_model.global_mean + folded.bias + explicit_model.item_bias[index]
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-4)
    assert np.all(np.diff(scores) <= 0)

    batch_index, batch_scores = recommend_new_users(explicit_model, RATINGS[:5], n=20)
    np.testing.assert_array_equal(batch_index[3], index)
    np.testing.assert_allclose(batch_scores[3], scores, rtol=1e-5)


# ------------------------------------------------------------------------------ explain


def _folded_score(model: FactorModel, history: csr_matrix, item: int) -> float:
    folded = fold_in_user(model, history.indices, history.data)
    score = float(model.item_factors[item].astype(np.float64) @ folded.factors)
    if model.has_biases:
        score += model.global_mean + float(folded.bias) + float(model.item_bias[item])
    return score


def test_explicit_explanation_decomposes_the_score(explicit_model):
    for user, item in [(0, 5), (42, 17), (150, 60)]:
        history = RATINGS[user]
        explanation = explain(explicit_model, history.indices, history.data, item)
        assert explanation.score == pytest.approx(
            explanation.baseline + explanation.contributions.sum(), abs=1e-9
        )
        assert explanation.score == pytest.approx(
            _folded_score(explicit_model, history, item), abs=1e-4
        )
        expected_baseline = (
            explicit_model.global_mean + explicit_model.item_bias[item]
            if explicit_model.has_biases
            else 0.0
        )
        assert explanation.baseline == pytest.approx(expected_baseline, abs=1e-6)
        assert sorted(explanation.items.tolist()) == sorted(history.indices.tolist())
        assert np.all(np.diff(explanation.contributions) <= 0)
        # converged model: the folded-in score is the trained prediction
        assert explanation.score == pytest.approx(
            explicit_model.predict([user], [item])[0], abs=0.05
        )


def test_implicit_explanation_matches_implicits_explain(implicit_model):
    twin = _implicit_twin(implicit_model)
    for user, item in [(0, 5), (42, 17), (150, 60)]:
        history = PLAYS[user]
        explanation = explain(implicit_model, history.indices, history.data, item)
        assert explanation.baseline == 0.0
        assert explanation.score == pytest.approx(explanation.contributions.sum(), abs=1e-9)
        assert explanation.score == pytest.approx(
            _folded_score(implicit_model, history, item), abs=1e-4
        )

        confidence = _confidence(implicit_model, history)
        total, top, _ = twin.explain(0, confidence, item, N=history.nnz)
        assert explanation.score == pytest.approx(total, rel=1e-4, abs=1e-6)
        top_items, top_contributions = zip(*top, strict=True)
        np.testing.assert_allclose(explanation.contributions, top_contributions, atol=1e-5)
        np.testing.assert_array_equal(explanation.items, top_items)


def test_prepared_fold_in_follows_the_model_object(implicit_model):
    history = PLAYS[0]
    before = fold_in_user(implicit_model, history.indices, history.data).factors
    shifted = dataclasses.replace(implicit_model, item_factors=implicit_model.item_factors * 2)
    after = fold_in_user(shifted, history.indices, history.data).factors
    assert not np.allclose(before, after), "a different model reused the cached half-step"
    entries_before = len(fold_in._half_steps)
    del shifted
    gc.collect()
    assert len(fold_in._half_steps) == entries_before - 1
    assert all(model_ref() is not None for model_ref, _ in fold_in._half_steps.values())


def test_prepared_fold_in_follows_the_models_lambda(implicit_model):
    """The half-step keeps YᵀY + λI per model: a model that differs only in λ gets its own."""
    history = PLAYS[7]
    fold_in_user(implicit_model, history.indices, history.data)  # the first model's, cached
    params = implicit_model.params
    stronger = dataclasses.replace(
        implicit_model,
        params=dataclasses.replace(params, regularization=params.regularization * 50),
    )
    items = implicit_model.item_factors.astype(np.float64)
    confidence = _confidence(implicit_model, history).toarray().ravel().astype(np.float64)
    weights = np.where(confidence > 0, confidence, 1.0)
    expected = np.linalg.solve(
        items.T @ (items * weights[:, None]) + stronger.params.regularization * np.eye(6),
        items.T @ (weights * (confidence > 0)),
    )
    folded = fold_in_user(stronger, history.indices, history.data)
    np.testing.assert_allclose(folded.factors, expected, rtol=1e-6, atol=1e-9)


def test_a_singular_system_raises_instead_of_returning_garbage(explicit_model):
    # no regularization and one rating: A = b bᵀ has rank 1
    unregularized = dataclasses.replace(
        explicit_model,
        params=dataclasses.replace(
            explicit_model.params, regularization=0.0, bias_regularization=None
        ),
    )
    with pytest.raises(np.linalg.LinAlgError, match="positive definite"):
        fold_in_user(unregularized, np.array([3]), np.array([4.0]))


@pytest.fixture(scope="module")
def centred_model() -> FactorModel:
    """A ranking model of ratings whose below-the-mean ratings are negative feedback."""
    params = TrainingParams(
        objective="ranking", rank=6, regularization=0.1, iterations=40, confidence="centred"
    )
    return fit_implicit_als(RATINGS, params).with_ids(USER_IDS, ITEM_IDS)


def test_centred_fold_in_reads_ratings_below_the_mean_as_negative_feedback(centred_model):
    """implicit reads a negative entry as preference 0 with confidence |value|: fold-in of a
    trained user solves implicit's own user step."""
    twin = _implicit_twin(centred_model)
    confidence = _confidence(centred_model, RATINGS)
    assert (confidence.data < 0).any()
    for user in range(0, N_USERS, 20):
        history = RATINGS[user]
        folded = fold_in_user(centred_model, history.indices, history.data)
        np.testing.assert_allclose(
            folded.factors, twin.recalculate_user(user, confidence[user]), rtol=1e-4, atol=1e-5
        )
        explanation = explain(centred_model, history.indices, history.data, 3)
        assert explanation.score == pytest.approx(
            float(folded.factors @ centred_model.item_factors[3]), abs=1e-4
        )
        # a disliked artist shapes the fold-in but explains nothing of a score
        disliked = set(history.indices[confidence[user].data < 0])
        assert all(
            contribution == 0
            for item, contribution in zip(explanation.items, explanation.contributions, strict=True)
            if item in disliked
        )
    with pytest.raises(ValueError, match="centred"):
        by_item = RATINGS.T.tocsr()
        fold_in_item(centred_model, by_item[0].indices, by_item[0].data)
