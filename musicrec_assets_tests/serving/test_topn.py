"""The batched top-N kernel: users -> artists, artists -> users, similar artists."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse import csr_matrix
from scipy.sparse import random as sparse_random

from musicrec_assets.serving.topn import flatten_top_n, similar_items, top_n_items, top_n_users


def _brute_force_top_n(queries, candidates, n, exclude=None):
    """Sorted top-n scores per row, -inf padded, the slow obvious way."""
    scores = queries.astype(np.float64) @ candidates.astype(np.float64).T
    if exclude is not None:
        scores[exclude.toarray() != 0] = -np.inf
    padded = np.hstack([scores, np.full((len(scores), n), -np.inf)])
    return -np.sort(-padded, axis=1)[:, :n]


def _assert_valid_top_n(index, scores, queries, candidates, n, exclude=None):
    assert index.shape == scores.shape == (len(queries), n)
    assert index.dtype == np.int32 and scores.dtype == np.float32
    expected = _brute_force_top_n(queries, candidates, n, exclude)
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-4)
    padding = index == -1
    assert np.array_equal(padding, np.isneginf(scores))
    rows, slots = np.nonzero(~padding)
    chosen = index[rows, slots]
    np.testing.assert_allclose(
        scores[rows, slots],
        np.einsum("ij,ij->i", queries[rows], candidates[chosen]),
        rtol=1e-4,
        atol=1e-4,
    )
    if exclude is not None:
        assert not exclude.toarray()[rows, chosen].any(), "an excluded entry was returned"
    for row in range(len(index)):
        valid = index[row][index[row] >= 0]
        assert len(np.unique(valid)) == len(valid)


@settings(max_examples=40, deadline=None)
@given(
    n_queries=st.integers(1, 40),
    n_candidates=st.integers(1, 400),
    n=st.integers(1, 30),
    density=st.sampled_from([0.0, 0.1, 0.9]),
    batch_size=st.sampled_from([None, 1, 7]),
    seed=st.integers(0, 2**16),
)
def test_top_n_items_matches_brute_force(n_queries, n_candidates, n, density, batch_size, seed):
    rng = np.random.default_rng(seed)
    users = rng.standard_normal((n_queries, 5)).astype(np.float32)
    items = rng.standard_normal((n_candidates, 5)).astype(np.float32)
    seen = sparse_random(n_queries, n_candidates, density=density, format="csr", random_state=seed)
    index, scores = top_n_items(users, items, seen, n=n, batch_size=batch_size)
    _assert_valid_top_n(index, scores, users, items, n, seen)


@settings(max_examples=60, deadline=None)
@given(
    n_queries=st.integers(1, 30),
    n_candidates=st.integers(1, 3000),
    n=st.integers(1, 30),
    levels=st.integers(1, 4),
    density=st.sampled_from([0.0, 0.1, 0.9]),
    batch_size=st.sampled_from([None, 1, 7]),
    n_threads=st.sampled_from([1, 2]),
    seed=st.integers(0, 2**16),
)
def test_equal_scores_go_to_the_lower_column(
    n_queries, n_candidates, n, levels, density, batch_size, n_threads, seed
):
    # small integer factors: scores tie a lot (levels 1: every score is 0)
    rng = np.random.default_rng(seed)
    users = rng.integers(0, levels, (n_queries, 2)).astype(np.float32)
    items = rng.integers(0, levels, (n_candidates, 2)).astype(np.float32)
    seen = sparse_random(n_queries, n_candidates, density=density, format="csr", random_state=seed)
    index, _ = top_n_items(users, items, seen, n=n, batch_size=batch_size, n_threads=n_threads)

    scores = np.hstack([users @ items.T, np.full((n_queries, n), -np.inf)])
    scores[:, :n_candidates][seen.toarray() != 0] = -np.inf
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :n]
    expected[np.isneginf(np.take_along_axis(scores, expected, axis=1))] = -1
    np.testing.assert_array_equal(index, expected)


def test_top_n_items_with_grouped_selection_at_scale():
    # enough items that the grouped (strided-max) selection path is taken
    rng = np.random.default_rng(0)
    users = rng.standard_normal((64, 16)).astype(np.float32)
    items = rng.standard_normal((20_011, 16)).astype(np.float32)
    seen = sparse_random(64, 20_011, density=0.05, format="csr", random_state=0)
    for n_threads in (1, 2):
        index, scores = top_n_items(users, items, seen, n=10, batch_size=24, n_threads=n_threads)
        _assert_valid_top_n(index, scores, users, items, 10, seen)
    unfiltered_index, unfiltered_scores = top_n_items(users, items, None, n=10)
    _assert_valid_top_n(unfiltered_index, unfiltered_scores, users, items, 10)


def test_top_n_items_pads_users_who_have_seen_almost_everything():
    users = np.ones((2, 2), dtype=np.float32)
    items = np.arange(8, dtype=np.float32).reshape(4, 2)
    seen = csr_matrix(np.array([[1, 1, 0, 1], [0, 0, 0, 0]]))
    index, scores = top_n_items(users, items, seen, n=3)
    assert index.tolist() == [[2, -1, -1], [3, 2, 1]]
    assert np.isneginf(scores[0, 1:]).all()


def test_top_n_items_rejects_mismatched_inputs():
    users, items = np.ones((3, 4)), np.ones((5, 4))
    with pytest.raises(ValueError, match="width"):
        top_n_items(users, np.ones((5, 3)))
    with pytest.raises(ValueError, match="shape"):
        top_n_items(users, items, csr_matrix((3, 6)))
    with pytest.raises(ValueError, match="n must"):
        top_n_items(users, items, n=0)


def test_top_n_users_excludes_existing_listeners():
    rng = np.random.default_rng(1)
    users = rng.standard_normal((300, 6)).astype(np.float32)
    items = rng.standard_normal((40, 6)).astype(np.float32)
    listeners = sparse_random(40, 300, density=0.2, format="csr", random_state=1)
    index, scores = top_n_users(items, users, n=15, exclude=listeners)
    _assert_valid_top_n(index, scores, items, users, 15, listeners)


def test_similar_items_is_cosine_without_the_item_itself():
    rng = np.random.default_rng(2)
    factors = rng.standard_normal((500, 8)).astype(np.float32)
    factors[7] = 0.0
    index, similarity = similar_items(factors, n=12)

    norms = np.linalg.norm(factors.astype(np.float64), axis=1)
    unit = factors / np.where(norms > 0, norms, 1.0)[:, None]
    cosine = unit @ unit.T
    np.fill_diagonal(cosine, -np.inf)
    expected = -np.sort(-cosine, axis=1)[:, :12]
    np.testing.assert_allclose(similarity, expected, atol=1e-5)
    assert not (index == np.arange(500)[:, None]).any()
    np.testing.assert_array_equal(similarity[7], 0.0)
    assert np.isfinite(similarity).all()


def test_flatten_top_n_drops_padding_and_ranks_from_one():
    index = np.array([[2, -1], [0, 1]], dtype=np.int32)
    scores = np.array([[0.5, -np.inf], [0.9, 0.1]], dtype=np.float32)
    query, rank, candidate, score = flatten_top_n(
        np.array(["u1", "u2"]), np.array(["a", "b", "c"]), index, scores
    )
    assert query.tolist() == ["u1", "u2", "u2"]
    assert rank.tolist() == [1, 1, 2]
    assert candidate.tolist() == ["c", "a", "b"]
    np.testing.assert_allclose(score, [0.5, 0.9, 0.1])
