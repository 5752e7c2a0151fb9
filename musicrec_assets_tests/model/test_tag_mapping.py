"""The tag mapping (ridge from TF-IDF tag vectors to artist factors, λ by leave-one-artist-out
CV) and the cold-artist protocol with its gate, on small generated worlds."""

import numpy as np
import pytest
from scipy.sparse import csr_matrix

from musicrec_assets.evaluation.cold_artists import (
    ARTISTS_FOR_USER,
    MAPPING,
    MAPPING_BY_SPREAD,
    MEAN_ARTIST,
    RANDOM,
    TAG_POPULARITY,
    USERS_FOR_ARTIST,
    audience_by_spread,
    cold_artist_split,
    evaluate_cold_artists,
    gate_margins,
    mapping_wins,
    ranking_scores,
    tags_to_factors,
)
from musicrec_assets.model.factors import FactorModel, TrainingParams
from musicrec_assets.model.fitters import fit_local
from musicrec_assets.model.tag_mapping import (
    TagFactors,
    _leave_one_out_errors,
    fit_tag_mapping,
    fit_tag_mappings,
    fit_vocabulary,
    tag_vectors,
)


def test_vocabulary_drops_rare_tags_and_rows_are_unit_tf_idf():
    tags = csr_matrix(np.array([[3.0, 1, 0, 0], [1, 0, 0, 2], [0, 1, 0, 0], [0, 0, 0, 0]]))
    vocabulary = fit_vocabulary(tags, min_artists=2)
    assert vocabulary.columns.tolist() == [0, 1]  # tag 2 is on no artist, tag 3 on one
    vectors = tag_vectors(tags, vocabulary).toarray()
    assert np.allclose(np.linalg.norm(vectors[:3], axis=1), 1.0)
    assert np.all(vectors[3] == 0)  # no kept tag: a zero row
    # tf is log1p(weight): the first artist's tag 0 (3 listeners) outweighs its tag 1 (one)
    assert vectors[0, 0] / vectors[0, 1] == pytest.approx(np.log1p(3) / np.log1p(1))


def test_leave_one_out_errors_are_those_of_refitting_without_each_artist():
    rng = np.random.default_rng(0)
    n, d, k = 14, 5, 3
    x = csr_matrix(rng.random((n, d)) * (rng.random((n, d)) < 0.6))
    y = rng.normal(size=(n, k))
    metric = np.diag([1.0, 2.0, 0.5])
    lambdas = np.array([0.01, 0.3, 5.0])

    def fit(rows, lam):
        xs, ys = x[rows].toarray(), y[rows]
        xm, ym = xs.mean(axis=0), ys.mean(axis=0)
        w = np.linalg.solve((xs - xm).T @ (xs - xm) + lam * np.eye(d), (xs - xm).T @ (ys - ym))
        return w, ym - xm @ w

    brute = []
    for lam in lambdas:
        total = 0.0
        for i in range(n):
            w, b = fit(np.delete(np.arange(n), i), lam)
            r = y[i] - (b + x[i].toarray()[0] @ w)
            total += r @ metric @ r
        brute.append(total / n)

    xd = x.toarray()
    x_mean = xd.mean(axis=0)
    gram = (xd - x_mean).T @ (xd - x_mean)
    eigenvalues, vectors = np.linalg.eigh(gram)
    y_centred = y - y.mean(axis=0)
    projected = vectors.T @ (xd.T @ y_centred)
    fast = _leave_one_out_errors(
        x, x_mean, vectors, np.maximum(eigenvalues, 0), projected, y_centred, lambdas, metric
    )
    assert fast == pytest.approx(brute, rel=1e-6)


def planted(n_artists=400, n_tags=30, k=4, noise=0.05, seed=1):
    """Artists whose factors are a linear function of their tag vectors, plus noise."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(1.0, (n_artists, n_tags)) * (rng.random((n_artists, n_tags)) < 0.2)
    tags = csr_matrix(counts.astype(float))
    truth = rng.normal(size=(n_tags, k))
    vectors = tag_vectors(tags, fit_vocabulary(tags, 1)).toarray()
    factors = vectors @ truth + noise * rng.normal(size=(n_artists, k))
    return tags, factors


def test_the_mapping_recovers_planted_factors_for_artists_it_never_saw():
    tags, factors = planted()
    fit_rows = np.arange(300)
    mapping = fit_tag_mapping(tags, factors, fit_rows, min_artists=1)
    held = np.arange(300, 400)
    held = held[tags[held].getnnz(axis=1) > 0]
    predicted = mapping.factors(tags[held])
    error = np.mean((predicted - factors[held]) ** 2)
    assert error < 0.1 * np.var(factors[held])
    assert not mapping.on_edge


def test_cv_shrinks_a_mapping_of_noise_to_the_mean_artist():
    tags, _ = planted()
    rng = np.random.default_rng(5)
    factors = rng.normal(size=(400, 4))  # nothing to do with the tags
    mapping = fit_tag_mapping(tags, factors, np.arange(400), min_artists=1)
    informative = fit_tag_mapping(tags, planted()[1], np.arange(400), min_artists=1)
    assert mapping.regularization > 100 * informative.regularization
    spread = mapping.factors(tags).std(axis=0)
    assert np.all(spread < 0.2 * factors.std(axis=0))


def test_mappings_of_several_targets_are_each_the_mapping_fitted_alone():
    tags, informative = planted()
    noise = np.random.default_rng(5).normal(size=(400, 4))
    users = np.random.default_rng(6).normal(size=(50, 4))
    targets = {"informative": (informative, users), "noise": (noise, None)}
    together = fit_tag_mappings(tags, targets, np.arange(300), min_artists=1)
    for name, (factors, user_factors) in targets.items():
        alone = fit_tag_mapping(tags, factors, np.arange(300), user_factors, min_artists=1)
        assert together[name].regularization == alone.regularization
        np.testing.assert_allclose(together[name].cv_errors, alone.cv_errors, rtol=1e-10)
        np.testing.assert_allclose(together[name].factors(tags), alone.factors(tags), rtol=1e-6)
    # the noise is shrunk to its mean, the informative target is not
    assert together["noise"].regularization > 100 * together["informative"].regularization


def test_ranking_scores_auc_and_ndcg_by_hand():
    scores = np.array([[0.9, 0.1, 0.5, 0.3], [1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    relevant = csr_matrix(np.array([[0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]]))
    means, aucs = ranking_scores(scores, relevant, ks=(2,))
    # row 0: the relevant item is 2nd of 4, above 2 of the 3 others; row 1: tied with the
    # best (half), above two: (0.5 + 2) / 3; row 2 has nothing relevant and is left out
    assert aucs == pytest.approx([2 / 3, 2.5 / 3])
    # NDCG@2: row 0 hit at rank 2 (1/log2 3); row 1 ties go to the lower index, so rank 2
    assert means["ndcg_at_2"] == pytest.approx(1 / np.log2(3))
    assert means["queries"] == 2


def taste_world(informative: bool, seed: int = 3, n_users=300, n_artists=500, n_genres=6):
    """Users who listen within their favourite genres; each artist tagged with one of its
    genre's four synonymous tags (so a user's own tags match a new artist's only in part,
    while the factor space knows the synonyms are one genre), or, for a world whose tags
    are noise, with a synonym of a random genre."""
    rng = np.random.default_rng(seed)
    synonyms = 4
    genre = rng.integers(n_genres, size=n_artists)
    taste = rng.dirichlet(np.full(n_genres, 0.3), size=n_users)
    popularity = rng.pareto(2.0, n_artists) + 0.2
    plays = rng.poisson(taste[:, genre] * popularity[None, :] * 0.3)
    tagged_as = genre if informative else rng.integers(n_genres, size=n_artists)
    counts = np.zeros((n_artists, n_genres * synonyms))
    tag = tagged_as * synonyms + rng.integers(synonyms, size=n_artists)
    counts[np.arange(n_artists), tag] = rng.integers(1, 5, n_artists)
    return csr_matrix(plays.astype(float)), csr_matrix(counts)


PARAMS = TrainingParams(
    objective="ranking", rank=8, regularization=1.0, iterations=8, alpha=1.0, confidence="log1p"
)


def fit(train):
    return fit_local(train, PARAMS)


def test_the_split_holds_out_a_share_of_tagged_artists_with_all_their_plays():
    plays, tags = taste_world(True)
    split = cold_artist_split(plays, tags, share=0.1, seed=0)
    assert len(split.held_out) == round(0.1 * np.sum(plays.getnnz(axis=0) > 0))
    assert split.train[:, split.held_out].nnz == 0
    assert split.test.nnz == plays[:, split.held_out].nnz
    assert split.train.nnz + split.test.nnz == plays.nnz


def test_on_informative_tags_the_mapping_beats_tag_popularity_and_passes_the_gate():
    plays, tags = taste_world(True)
    result = evaluate_cold_artists(plays, tags, fit, share=0.1, seed=0, min_tag_artists=2)
    a, b = result.scores[USERS_FOR_ARTIST], result.scores[ARTISTS_FOR_USER]
    for task in (a, b):
        assert task[MAPPING]["auc"] > task[RANDOM]["auc"] + 0.2
        assert task[MAPPING]["auc"] > task[TAG_POPULARITY]["auc"]
    assert abs(a[RANDOM]["auc"] - 0.5) < 0.1
    assert b[MEAN_ARTIST]["auc"] == pytest.approx(0.5)  # one score for every artist
    assert mapping_wins(result), gate_margins(result)
    # (a) also ranks users by their scores in units of their spread (which changes no user's
    # own order, so not (b)): a ranking of its own, as good on the whole
    assert MAPPING_BY_SPREAD not in b
    assert a[MAPPING_BY_SPREAD]["auc"] > a[TAG_POPULARITY]["auc"]
    assert a[MAPPING_BY_SPREAD]["ndcg_at_10"] != a[MAPPING]["ndcg_at_10"]


def test_the_gate_withholds_a_mapping_of_tags_that_are_noise():
    plays, tags = taste_world(False)
    result = evaluate_cold_artists(plays, tags, fit, share=0.1, seed=0, min_tag_artists=2)
    assert not mapping_wins(result), gate_margins(result)
    # what it would have published is about the mean artist: tags that say nothing add nothing
    a = result.scores[USERS_FOR_ARTIST]
    assert abs(a[MAPPING]["auc"] - a[MEAN_ARTIST]["auc"]) < 0.05
    assert a[TAG_POPULARITY]["auc"] < a[RANDOM]["auc"] + 0.05


def test_tags_to_factors_places_new_artists_in_every_role_only_past_the_gate():
    plays, tags = taste_world(True)
    known, new = tags[:450], tags[450:]
    plays = plays[:, :450]
    model = fit(plays)
    rating_like = FactorModel(
        params=model.params,
        user_factors=model.user_factors,
        item_factors=model.item_factors,
        global_mean=1.0,
        user_bias=np.zeros(model.n_users, np.float32),
        item_bias=np.linspace(-1, 1, model.n_items).astype(np.float32),
    )
    models = {"ranking": model, "rating": rating_like}
    placed = tags_to_factors(models, plays, known, new, fit, seed=0)
    assert placed.passed, placed.reason
    assert placed.rows.tolist() == np.flatnonzero(new.getnnz(axis=1) > 0).tolist()
    assert placed.vectors["ranking"].shape == (len(placed.rows), model.item_factors.shape[1])
    # biases folded in as the published vectors have them: [q, b_i, 1]
    assert placed.vectors["rating"].shape[1] == model.item_factors.shape[1] + 2
    np.testing.assert_allclose(placed.vectors["rating"][:, -1], 1.0, atol=1e-6)

    noise_plays, noise_tags = taste_world(False)
    withheld = tags_to_factors(
        {"ranking": model}, noise_plays[:, :450], noise_tags[:450], noise_tags[450:], fit, seed=0
    )
    assert not withheld.passed and withheld.reason.startswith("withheld")
    assert len(withheld.rows) == 0 and withheld.vectors == {}


def test_placed_factors_and_the_verdict_are_saved_and_loaded_as_they_were(tmp_path):
    plays, tags = taste_world(True)
    model = fit(plays[:, :450])
    placed = tags_to_factors({"ranking": model}, plays[:, :450], tags[:450], tags[450:], fit)
    ids = np.array([f"new{row}" for row in placed.rows])
    assert TagFactors.load(tmp_path) is None  # a version from before artists were placed
    placed.save(tmp_path, ids)
    loaded_ids, loaded = TagFactors.load(tmp_path)
    assert loaded_ids.tolist() == ids.tolist() and loaded.passed == placed.passed
    assert (
        loaded.reason,
        loaded.margins,
        loaded.scores,
        loaded.regularization,
        loaded.audience_by_spread,
    ) == (
        placed.reason,
        placed.margins,
        placed.scores,
        placed.regularization,
        audience_by_spread(evaluate_cold_artists(plays[:, :450], tags[:450], fit)),
    )
    np.testing.assert_array_equal(loaded.vectors["ranking"], placed.vectors["ranking"])
    # a withheld verdict keeps its reason, with nothing placed
    noise_plays, noise_tags = taste_world(False)
    withheld = tags_to_factors(
        {"ranking": model}, noise_plays[:, :450], noise_tags[:450], noise_tags[450:], fit
    )
    withheld.save(tmp_path, np.zeros(0, dtype=str))
    ids, loaded = TagFactors.load(tmp_path)
    assert len(ids) == 0 and loaded.vectors == {} and loaded.reason == withheld.reason


def test_the_gate_withholds_when_too_few_artists_judge_the_mapping():
    plays, tags = taste_world(True, n_artists=120, n_users=300)
    result = evaluate_cold_artists(plays, tags, fit, share=0.1, seed=0, min_tag_artists=2)
    assert result.n_held_out < 20  # (a) has fewer queries than the gate needs
    assert not mapping_wins(result)
    placed = tags_to_factors({"ranking": fit(plays)}, plays, tags, tags[:0], fit, seed=0)
    assert "too few" in placed.reason
