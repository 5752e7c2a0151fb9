import numpy as np
import pytest
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from implicit.evaluation import ranking_metrics_at_k
from threadpoolctl import threadpool_limits

from musicrec_assets.evaluation import metrics
from musicrec_assets.evaluation.metrics import (
    evaluate,
    mae,
    mse,
    ranked_lists,
    rmse,
    stats_of_lists,
)
from musicrec_assets.model.factors import FactorModel, TrainingParams
from musicrec_assets.serving import topn


def ranking_stats(user_vectors, item_vectors, train, test, k=10, users=None):
    """The statistics of the top-K lists, as ``evaluate`` computes them."""
    return stats_of_lists(*ranked_lists(user_vectors, item_vectors, train, test, k, users), test, k)


def test_rating_errors_by_hand():
    actual, predicted = np.array([1.0, 2.0, 3.0]), np.array([1.5, 2.0, 1.0])
    # errors 0.5, 0, 2
    assert mse(actual, predicted) == pytest.approx(4.25 / 3)
    assert rmse(actual, predicted) == pytest.approx(np.sqrt(4.25 / 3))
    assert mae(actual, predicted) == pytest.approx(2.5 / 3)


def tiny_example():
    """Item i scores 6 - i for user 0, i - 6 for users 1 and 2 (so 0 > 1 > ... and the reverse).

    user 0: train {1}, test {2, 4} → ranked 0, 2, 3 → one hit at rank 2
    user 1: train {5}, test {4}    → ranked 4, 3, 2 → one hit at rank 1
    user 2: no test items          → not evaluated
    """
    user_vectors = np.array([[1.0], [-1.0], [-1.0]])
    item_vectors = np.array([[6.0], [5.0], [4.0], [3.0], [2.0], [1.0]])
    train = sp.csr_matrix(([1.0, 1.0, 1.0], ([0, 1, 2], [1, 5, 0])), shape=(3, 6))
    test = sp.csr_matrix(([1.0, 1.0, 1.0], ([0, 0, 1], [2, 4, 4])), shape=(3, 6))
    return user_vectors, item_vectors, train, test


def test_ranking_metrics_by_hand():
    stats = ranking_stats(*tiny_example(), k=3)
    assert stats.users.tolist() == [0, 1]
    assert stats.hits.tolist() == [1, 1]
    assert stats.n_relevant.tolist() == [2, 1]
    # user 0: DCG = 1/log2(3), ideal DCG = 1 + 1/log2(3); user 1: hit at the top
    ndcg_user_0 = (1 / np.log2(3)) / (1 + 1 / np.log2(3))
    assert stats.ndcg == pytest.approx([ndcg_user_0, 1.0])
    # user 0: precision at the hit 1/2, divided by min(K, n) = 2; user 1: 1/1
    assert stats.average_precision == pytest.approx([0.25, 1.0])

    assert stats.means() == pytest.approx(
        {
            "precision_at_3": 1 / 3,
            "recall_at_3": (1 / 2 + 1) / 2,
            "ndcg_at_3": (ndcg_user_0 + 1) / 2,
            "map_at_3": (0.25 + 1) / 2,
        }
    )


def implicit_model(user_vectors: np.ndarray, item_vectors: np.ndarray):
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(factors=user_vectors.shape[1], num_threads=1)
    model.user_factors = user_vectors.astype(np.float32)
    model.item_factors = item_vectors.astype(np.float32)
    return model


def implicit_precision(stats: metrics.RankingStats) -> float:
    """implicit's "precision": hits pooled over users / Σ min(K, n_relevant)."""
    return stats.hits.sum() / np.minimum(stats.k, stats.n_relevant).sum()


def test_tiny_example_agrees_with_implicit():
    user_vectors, item_vectors, train, test = tiny_example()
    stats = ranking_stats(user_vectors, item_vectors, train, test, k=3)
    expected = ranking_metrics_at_k(
        implicit_model(user_vectors, item_vectors), train, test, K=3, show_progress=False
    )
    assert implicit_precision(stats) == pytest.approx(expected["precision"]) == 2 / 3
    assert stats.means()["ndcg_at_3"] == pytest.approx(expected["ndcg"])
    assert stats.means()["map_at_3"] == pytest.approx(expected["map"])


def random_problem(n_users=300, n_items=500, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    user_vectors = rng.normal(size=(n_users, dim)).astype(np.float32)
    item_vectors = rng.normal(size=(n_items, dim)).astype(np.float32)
    interactions = sp.random(n_users, n_items, density=0.08, format="csr", random_state=rng)
    held_out = rng.random(interactions.nnz) < 0.3
    rows = np.repeat(np.arange(n_users), np.diff(interactions.indptr))
    train = sp.csr_matrix(
        (np.ones((~held_out).sum()), (rows[~held_out], interactions.indices[~held_out])),
        shape=(n_users, n_items),
    )
    test = sp.csr_matrix(
        (np.ones(held_out.sum()), (rows[held_out], interactions.indices[held_out])),
        shape=(n_users, n_items),
    )
    return user_vectors, item_vectors, train, test


@pytest.mark.parametrize(("k", "n_items"), [(1, 500), (5, 500), (10, 500), (50, 500), (10, 5000)])
def test_agrees_with_implicit_ranking_metrics(k, n_items):
    user_vectors, item_vectors, train, test = random_problem(n_items=n_items)
    stats = ranking_stats(user_vectors, item_vectors, train, test, k=k)
    expected = ranking_metrics_at_k(
        implicit_model(user_vectors, item_vectors), train, test, K=k, show_progress=False
    )
    means = stats.means()
    assert means[f"ndcg_at_{k}"] == pytest.approx(expected["ndcg"], rel=1e-9)
    assert means[f"map_at_{k}"] == pytest.approx(expected["map"], rel=1e-9)
    assert implicit_precision(stats) == pytest.approx(expected["precision"], rel=1e-9)


def test_batches_give_the_same_result(monkeypatch):
    problem = random_problem()
    whole = ranking_stats(*problem, k=10)
    monkeypatch.setattr(topn, "_BLOCK_CELLS", 7 * problem[1].shape[0])
    batched = ranking_stats(*problem, k=10)
    assert batched.means() == whole.means()


def test_ranking_a_sample_of_users_scores_each_as_ranking_all_does():
    problem = random_problem()
    test = problem[3]
    whole = ranking_stats(*problem, k=10)
    sample = metrics.ranked_users(test, max_users=20, seed=3)
    assert len(sample) == 20 and np.all(np.diff(sample) > 0)
    assert np.all(np.diff(test.indptr)[sample] > 0)  # only users with held-out items
    assert np.array_equal(sample, metrics.ranked_users(test, max_users=20, seed=3))
    assert not np.array_equal(sample, metrics.ranked_users(test, max_users=20, seed=4))

    part = ranking_stats(*problem, k=10, users=sample)
    assert np.array_equal(part.users, sample)
    positions = np.searchsorted(whole.users, sample)
    assert np.array_equal(part.ndcg, whole.ndcg[positions])
    assert np.array_equal(part.hits, whole.hits[positions])


def test_all_users_are_ranked_when_they_are_few():
    test = random_problem()[3]
    with_held_out = np.flatnonzero(np.diff(test.indptr) > 0)
    everyone = len(with_held_out)
    assert np.array_equal(metrics.ranked_users(test, max_users=everyone, seed=0), with_held_out)
    assert np.array_equal(metrics.ranked_users(test, max_users=0, seed=0), with_held_out)


def test_never_recommends_training_items():
    user_vectors, item_vectors, train, _ = random_problem()
    # hold out exactly the training items: no hit is possible
    stats = ranking_stats(user_vectors, item_vectors, train, train, k=10)
    assert stats.hits.sum() == 0


def test_ties_go_to_the_lower_item_index():
    user_vectors, item_vectors = np.zeros((1, 2)), np.ones((5, 2))
    train = sp.csr_matrix(([1.0], ([0], [0])), shape=(1, 5))
    test = sp.csr_matrix(([1.0], ([0], [2])), shape=(1, 5))
    # every score is 0: the ranking is items 1, 2, 3, 4
    stats = ranking_stats(user_vectors, item_vectors, train, test, k=2)
    assert stats.ndcg == pytest.approx([1 / np.log2(3)])


@pytest.mark.parametrize("n_items", [30, 2000])
def test_ranks_the_lists_top_n_items_serves_ties_included(n_items):
    # integer scores in 0..8 tie a lot, as a popularity baseline's do
    rng = np.random.default_rng(5)
    _, _, train, test = random_problem(n_items=n_items, seed=5)
    user_vectors = rng.integers(0, 3, (train.shape[0], 2)).astype(np.float32)
    item_vectors = rng.integers(0, 3, (n_items, 2)).astype(np.float32)
    stats = ranking_stats(user_vectors, item_vectors, train, test, k=10)

    served, _ = topn.top_n_items(user_vectors[stats.users], item_vectors, train[stats.users], n=10)
    scores = user_vectors[stats.users] @ item_vectors.T
    scores[train[stats.users].toarray() != 0] = -np.inf
    # a stable sort of every row: equal scores, the lower item index first
    np.testing.assert_array_equal(served, np.argsort(-scores, axis=1, kind="stable")[:, :10])
    is_hit = np.take_along_axis(test[stats.users].toarray() != 0, served, axis=1)
    assert np.array_equal(stats.hits, is_hit.sum(axis=1))
    discounts = 1.0 / np.log2(np.arange(2, 12))
    ideal = np.cumsum(discounts)[np.minimum(stats.n_relevant, 10) - 1]
    np.testing.assert_allclose(stats.ndcg, is_hit @ discounts / ideal, rtol=1e-12)


def test_k_larger_than_the_catalogue():
    user_vectors, item_vectors, train, test = random_problem(n_items=12)
    stats = ranking_stats(user_vectors, item_vectors, train, test, k=20)
    assert np.all(stats.hits == stats.n_relevant)
    assert stats.means()["recall_at_20"] == 1.0


def test_evaluate_explicit_scores_ratings_with_biases():
    params = TrainingParams(objective="rating", rank=1, regularization=0.1)
    model = FactorModel(
        params=params,
        user_ids=np.array(["a", "b"]),
        item_ids=np.array(["x", "y", "z"]),
        user_factors=np.array([[1.0], [2.0]], dtype=np.float32),
        item_factors=np.array([[0.5], [0.0], [-0.5]], dtype=np.float32),
        global_mean=3.0,
        user_bias=np.array([0.5, -0.5], dtype=np.float32),
        item_bias=np.array([0.0, 0.25, 0.0], dtype=np.float32),
    )
    train = sp.csr_matrix(([4.0, 2.0], ([0, 1], [0, 1])), shape=(2, 3))
    test = sp.csr_matrix(([3.0, 2.0], ([0, 1], [2, 2])), shape=(2, 3))
    # predictions: a,z = 3 + 0.5 + 0 - 0.5 = 3.0; b,z = 3 - 0.5 + 0 - 1.0 = 1.5
    result = evaluate(model, train, test, "explicit")
    assert result["rmse"] == pytest.approx(np.sqrt(0.25 / 2))
    assert result["mae"] == pytest.approx(0.25)
    assert result["mse"] == pytest.approx(0.125)
    assert set(result) == {
        "rmse",
        "mse",
        "mae",
        "precision_at_10",
        "recall_at_10",
        "ndcg_at_10",
        "map_at_10",
        "ndcg_liked_at_10",
        "coverage_at_10",
    }


def test_evaluate_implicit_accepts_vectors_and_skips_rating_errors():
    user_vectors, item_vectors, train, test = tiny_example()
    result = evaluate((user_vectors, item_vectors), train, test, "implicit", k=3)
    assert set(result) == {
        "precision_at_3",
        "recall_at_3",
        "ndcg_at_3",
        "map_at_3",
        "coverage_at_3",
    }


def test_a_ranking_model_of_ratings_has_no_rating_errors():
    user_vectors, item_vectors, train, test = tiny_example()
    model = FactorModel(
        params=TrainingParams(objective="ranking", rank=1, regularization=1.0),
        user_factors=user_vectors.astype(np.float32),
        item_factors=item_vectors.astype(np.float32),
    )
    result = evaluate(model, train, test, "explicit", k=3)
    assert "rmse" not in result
    assert {"ndcg_at_3", "ndcg_liked_at_3", "coverage_at_3"} <= set(result)


def rated_example():
    """The scores of ``tiny_example`` with ratings; top 3 lists and liked held-out items:

    user 0: train {1: 3, 5: 1} (mean 2), test {2: 1, 4: 2.5}: list 0, 2, 3, liked {4}
    user 1: train {5: 4} (mean 4), test {3: 4, 4: 3}: list 4, 3, 2, liked {3}
    user 2: train {0: 2}, test {1: 5}: list 5, 4, 3, liked {1}
    """
    user_vectors = np.array([[1.0], [-1.0], [-1.0]])
    item_vectors = np.array([[6.0], [5.0], [4.0], [3.0], [2.0], [1.0]])
    train = sp.csr_matrix(([3.0, 1.0, 4.0, 2.0], ([0, 0, 1, 2], [1, 5, 5, 0])), shape=(3, 6))
    test = sp.csr_matrix(
        ([1.0, 2.5, 4.0, 3.0, 5.0], ([0, 0, 1, 1, 2], [2, 4, 3, 4, 1])), shape=(3, 6)
    )
    return user_vectors, item_vectors, train, test


def test_liked_items_are_held_out_ratings_at_or_above_the_users_training_mean():
    _, _, train, test = rated_example()
    liked = metrics.liked_items(train, test)
    assert liked.toarray().tolist() == [
        [0, 0, 0, 0, 2.5, 0],
        [0, 0, 0, 4.0, 0, 0],
        [0, 5.0, 0, 0, 0, 0],
    ]
    # no training ratings: nothing is liked
    nothing = metrics.liked_items(sp.csr_matrix((3, 6)), test)
    assert nothing.nnz == 0


def test_liked_ndcg_and_coverage_by_hand():
    user_vectors, item_vectors, train, test = rated_example()
    result = evaluate((user_vectors, item_vectors), train, test, "explicit", k=3)
    # lists: user 0 → 0, 2, 3; user 1 → 4, 3, 2; user 2 → 5, 4, 3 (its train item 0 left out)
    # any:   user 0 hit 2 at rank 2 of 2 relevant; user 1 hits at ranks 1, 2; user 2 none
    ideal_two = 1 + 1 / np.log2(3)
    any_ndcg = [(1 / np.log2(3)) / ideal_two, 1.0, 0.0]
    assert result["ndcg_at_3"] == pytest.approx(np.mean(any_ndcg))
    # liked: user 0 → {4} missed; user 1 → {3} at rank 2; user 2 → {1} missed
    assert result["ndcg_liked_at_3"] == pytest.approx(np.mean([0.0, 1 / np.log2(3), 0.0]))
    # items 0, 2, 3, 4, 5 appear in some list, item 1 in none
    assert result["coverage_at_3"] == pytest.approx(5 / 6)


def test_catalogue_coverage_ignores_padding():
    lists = np.array([[3, 1, -1], [1, -1, -1]])
    assert metrics.catalogue_coverage(lists, 8) == pytest.approx(2 / 8)
    assert metrics.catalogue_coverage(np.full((2, 3), -1), 8) == 0.0
