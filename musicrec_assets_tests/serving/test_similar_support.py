"""similar_items shrunk by support: no artist's neighbours decided by one listener."""

import numpy as np
import pytest
from scipy.sparse import csr_matrix

from musicrec_assets.model.factors import TrainingParams
from musicrec_assets.model.fitters import fit_local
from musicrec_assets.serving.tables import listeners
from musicrec_assets.serving.topn import SIMILARITY_SHRINKAGE, similar_items, support_rows


def test_support_rows_shrink_the_cosine_by_both_supports():
    factors = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [0.0, 0.0]], dtype=np.float32)
    support = np.array([1, 20, 5, 0])
    rows = support_rows(factors, support, shrinkage=5.0)
    expected = np.sqrt(1 / 6) * np.sqrt(20 / 25)
    assert rows[0] @ rows[1] == pytest.approx(expected)
    assert np.all(rows[3] == 0)  # no factors, no listeners: similar to nothing
    np.testing.assert_allclose(support_rows(factors, None), support_rows(factors, support, 0.0))


def test_artists_of_one_listener_no_longer_top_each_others_lists():
    """ALS gives every artist that one listener alone plays that listener's direction:
    artists 0-2 have cosine 1 to each other, and would fill each other's lists ahead of
    artist 3, which 200 listeners share and which points almost the same way."""
    lone = np.array([1.0, 0.2, 0.0])
    factors = np.vstack([lone, 2 * lone, 0.5 * lone, [0.8, 0.6, 0.1], [0.0, 0.0, 1.0]])
    support = np.array([1, 1, 1, 200, 50])
    plain, cosine = similar_items(factors.astype(np.float32), n=3)
    assert plain[0].tolist() == [1, 2, 3] and cosine[0, 0] == pytest.approx(1.0)
    shrunk, similarity = similar_items(factors.astype(np.float32), n=3, support=support)
    assert shrunk[0].tolist() == [3, 1, 2]  # the supported neighbour first
    assert shrunk[3, 0] == 0  # order within a list is the neighbours' shrunk cosines
    # what is published beside the order is the plain cosine of each pair
    unit = factors / np.linalg.norm(factors, axis=1, keepdims=True)
    np.testing.assert_allclose(similarity, np.einsum("qk,qnk->qn", unit, unit[shrunk]), rtol=1e-5)
    # the order is the cosine shrunk by both supports: one listener keeps 1 / (1 + β)
    shrunk_rows = support_rows(factors, support)
    assert shrunk_rows[0] @ shrunk_rows[1] == pytest.approx(1 / (1 + SIMILARITY_SHRINKAGE))


def test_on_an_als_model_lone_listener_artists_leave_the_top_of_the_lists():
    rng = np.random.default_rng(0)
    plays = (rng.random((80, 40)) < 0.15).astype(float)
    plays[0, 30:] = 1  # artists 30-39: user 0's alone
    plays[1:, 30:] = 0
    matrix = csr_matrix(plays)
    params = TrainingParams(
        objective="ranking",
        rank=6,
        regularization=0.1,
        iterations=10,
        alpha=5.0,
        confidence="log1p",
    )
    model = fit_local(matrix, params)
    plain, cosine = similar_items(model.item_factors, n=5)
    # the defect: each lone artist's list is the other lone artists, at cosine 1
    assert np.all(plain[30:, 0] >= 30) and np.all(cosine[30:, 0] > 0.999)
    shrunk, _ = similar_items(model.item_factors, n=5, support=listeners(matrix, 40))
    assert np.all(shrunk[30:, 0] < 30)  # a neighbour many listeners share comes first


def test_listeners_counts_each_artists_stored_entries():
    seen = csr_matrix(np.array([[1, 0, 3], [1, 0, 0]], dtype=np.float32))
    assert listeners(seen, 3).tolist() == [2, 0, 1]
    assert listeners(seen, 2).tolist() == [2, 0]  # artists the model does not know are cut
