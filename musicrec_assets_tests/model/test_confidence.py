import numpy as np
import pytest
import scipy.sparse as sp
from implicit.nearest_neighbours import bm25_weight

from musicrec_assets.model.confidence import SCHEMES, ConfidenceScaler, fit_confidence


def random_plays(n_users=50, n_items=80, seed=0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    plays = sp.random(n_users, n_items, density=0.1, format="csr", random_state=rng)
    plays.data = np.ceil(plays.data * 1000)
    return plays


@pytest.mark.parametrize(("k1", "b"), [(100.0, 0.8), (1.2, 0.75)])
def test_bm25_matches_implicit(k1, b):
    plays = random_plays()
    scaler = fit_confidence(plays, "bm25", alpha=1.0, k1=k1, b=b)
    expected = bm25_weight(plays, K1=k1, B=b).tocsr()
    assert np.allclose(scaler.scale(plays).toarray(), expected.toarray())


def test_bm25_scales_a_new_user_with_training_statistics():
    plays = random_plays()
    scaler = fit_confidence(plays, "bm25", alpha=1.0)
    # a user's row scales the same alone as inside the training matrix
    for user in (0, 7, 49):
        alone = scaler.scale(plays[user])
        assert np.allclose(alone.toarray(), scaler.scale(plays).toarray()[user])


@pytest.mark.parametrize(("scheme", "scale"), [("raw", lambda x: x), ("log1p", np.log1p)])
def test_confidence_is_one_plus_alpha_times_scale(scheme, scale):
    plays = random_plays()
    confidence = fit_confidence(plays, scheme, alpha=3.0).transform(plays)
    assert confidence.dtype == np.float32
    assert np.array_equal(confidence.indices, plays.indices)
    assert np.allclose(confidence.data, 1.0 + 3.0 * scale(plays.data), rtol=1e-6)


def test_transform_does_not_modify_input():
    plays = random_plays()
    before = plays.data.copy()
    fit_confidence(plays, "bm25", alpha=2.0).transform(plays)
    assert np.array_equal(plays.data, before)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_scaler_round_trips_through_extras(scheme):
    plays = random_plays()
    scaler = fit_confidence(plays, scheme, alpha=0.5)
    extras = scaler.extras()
    assert all(isinstance(values, np.ndarray) for values in extras.values())
    rebuilt = ConfidenceScaler.from_extras(scheme, 0.5, extras)
    assert np.array_equal(rebuilt.transform(plays).toarray(), scaler.transform(plays).toarray())


def test_bm25_extras_hold_idf_per_item_and_scalars_as_one_element_arrays():
    plays = random_plays()
    extras = fit_confidence(plays, "bm25", alpha=1.0).extras()
    assert extras["bm25_idf"].shape == (plays.shape[1],)
    for name in ("bm25_average_length", "bm25_k1", "bm25_b"):
        assert extras[name].shape == (1,)


def test_unknown_scheme_is_rejected():
    with pytest.raises(ValueError, match="unknown confidence scheme"):
        fit_confidence(random_plays(), "sqrt", alpha=1.0)


def half_star_ratings() -> sp.csr_matrix:
    """user 0 rates 4, 2, 3 (mean 3); user 1 rates 1, 1 (mean 1); user 2 nothing."""
    return sp.csr_matrix(
        ([4.0, 2.0, 3.0, 1.0, 1.0], ([0, 0, 0, 1, 1], [0, 2, 3, 1, 3])), shape=(3, 4)
    )


@pytest.mark.parametrize(
    ("scheme", "expected"),
    [
        # c = 1 + α·1 on every rated pair
        ("binary", [3.0, 3.0, 3.0, 3.0, 3.0]),
        # c = 1 + α·rating
        ("rating", [9.0, 5.0, 7.0, 3.0, 3.0]),
        # r − mean_u: +1, −1, 0 and 0, 0; below the mean: preference 0 with c = 1 + α·|r − mean|
        ("centred", [3.0, -3.0, 1.0, 1.0, 1.0]),
    ],
)
def test_rating_schemes_by_hand(scheme, expected):
    ratings = half_star_ratings()
    confidence = fit_confidence(ratings, scheme, alpha=2.0).transform(ratings)
    assert confidence.dtype == np.float32
    assert np.array_equal(confidence.indptr, ratings.indptr)
    assert np.array_equal(confidence.indices, ratings.indices)
    assert confidence.data.tolist() == expected
    assert fit_confidence(ratings, scheme, alpha=2.0).extras() == {}


def test_centred_scales_a_users_row_alone_as_inside_the_matrix():
    ratings = random_plays()
    ratings.data = np.ceil(ratings.data / 125) / 2  # half stars 0.5 .. 4
    scaler = fit_confidence(ratings, "centred", alpha=1.5)
    whole = scaler.transform(ratings).toarray()
    assert (whole < 0).any() and (whole > 0).any()
    for user in (0, 13, 49):
        assert np.array_equal(scaler.transform(ratings[user]).toarray()[0], whole[user])


@pytest.mark.parametrize("scheme", SCHEMES)
def test_one_rows_entries_scale_as_that_row_of_the_matrix(scheme):
    """transform_row (fold-in of one listener, no sparse matrix) is transform's row, exactly."""
    plays = random_plays()
    plays.data = np.ceil(plays.data / 125) / 2  # half stars, so that centred has both signs
    scaler = fit_confidence(plays, scheme, alpha=1.5)
    whole = scaler.transform(plays)
    for user in (0, 13, 49):
        row = plays[user]
        confidence = scaler.transform_row(row.indices, row.data)
        assert confidence.dtype == np.float32
        assert np.array_equal(confidence, whole[user].data)
        assert np.array_equal(scaler.scale_row(row.indices, row.data), scaler.scale(row).data)
