"""The adaptive search (Optuna) behind tuning: reproducible, pruned, budgeted, widening its
ranges, warm-started from the previous study."""

import dataclasses

import numpy as np

from musicrec_assets.evaluation.tuning import (
    Budget,
    Dimension,
    SearchResult,
    SearchSpace,
    StudyRecord,
    cross_validate,
    rating_space,
)
from musicrec_assets.model.factors import TrainingParams
from musicrec_assets.tracking.studies import study_storage
from musicrec_assets_tests.evaluation.test_tuning import clustered_plays, planted_ratings

RATING = TrainingParams(objective="rating", rank=2, regularization=0.1, iterations=6)
RANKING = TrainingParams(objective="ranking", rank=8, regularization=1.0, iterations=4)
# the rating model's factors only: rank and λ searched, the biases' λ fixed
RANK_AND_LAMBDA = SearchSpace(
    (
        Dimension("rank", low=1, high=8, integer=True, limits=(1, 64)),
        Dimension("regularization", low=0.01, high=1.0, limits=(1e-4, 100.0)),
    )
)


def search_ratings(ratings, space: SearchSpace, **options) -> SearchResult:
    """The rating model's search of ``space`` on ``ratings``."""
    return cross_validate(ratings, RATING, space, feedback="explicit", **options)


def searched(trials):
    return [(t.params.rank, t.params.regularization) for t in trials]


def test_a_search_is_reproducible_for_a_seed():
    first = search_ratings(planted_ratings(), RANK_AND_LAMBDA, seed=3, budget=Budget(8))
    second = search_ratings(planted_ratings(), RANK_AND_LAMBDA, seed=3, budget=Budget(8))
    other = search_ratings(planted_ratings(), RANK_AND_LAMBDA, seed=4, budget=Budget(8))
    assert searched(first.trials) == searched(second.trials)
    assert [t.mean_metrics["rmse"] for t in first.trials] == [
        t.mean_metrics["rmse"] for t in second.trials
    ]
    assert searched(first.trials) != searched(other.trials)


def test_the_budget_ends_the_search():
    by_trials = search_ratings(planted_ratings(), RANK_AND_LAMBDA, budget=Budget(5))
    assert len(by_trials.trials) == 5 and by_trials.stopped_by == "trials"
    by_time = search_ratings(
        planted_ratings(), RANK_AND_LAMBDA, budget=Budget(trials=10_000, seconds=1.0)
    )
    assert by_time.stopped_by == "time"
    assert 1 <= len(by_time.trials) < 10_000
    assert by_time.seconds < 30


def test_pruning_stops_a_hopeless_trial_after_its_first_fold():
    # λ up to 10⁵ shrinks every factor to nothing: a random start draws some hopeless trials
    space = SearchSpace((Dimension("regularization", low=0.1, high=1e5, limits=(0.1, 1e5)),))
    result = cross_validate(
        clustered_plays(), RANKING, space, feedback="implicit", n_folds=3, seed=0, budget=Budget(20)
    )
    pruned = [t for t in result.trials if t.pruned]
    assert pruned, [t.mean_metrics["ndcg_at_10"] for t in result.trials]
    complete = [t for t in result.trials if not t.pruned]
    assert all(len(t.fold_metrics) < 3 for t in pruned)
    assert all(len(t.fold_metrics) == 3 for t in complete)
    # each pruned trial's first fold was below the median of the complete trials' first folds
    first_folds = np.median([t.fold_metrics[0]["ndcg_at_10"] for t in complete])
    assert all(t.fold_metrics[0]["ndcg_at_10"] < first_folds for t in pruned)
    assert not result.best.pruned


def test_an_optimum_outside_the_initial_range_is_found_by_widening():
    """The ratings are planted at rank 3 but the search starts at ranks 1-2: the best rank
    sits on the upper edge, the range grows, and the search finds a rank of at least 3."""
    narrow = RANK_AND_LAMBDA.replace(Dimension("rank", low=1, high=2, integer=True, limits=(1, 64)))
    result = search_ratings(planted_ratings(), narrow, seed=1, budget=Budget(30))
    assert any(change.startswith("rank 2 →") for change in result.widened), result.widened
    assert result.best.params.rank >= 3
    at_two = [t for t in result.trials if t.params.rank == 2 and not t.pruned]
    assert result.best.mean_metrics["rmse"] < min(t.mean_metrics["rmse"] for t in at_two)


def test_the_rating_space_holds_the_bias_model():
    space = rating_space({})
    result = cross_validate(
        planted_ratings(),
        dataclasses.replace(RATING, rank=0),
        space,
        feedback="explicit",
        budget=Budget(12),
    )
    assert max(t.params.rank for t in result.trials) <= 80  # no more factors than items
    ranks = {t.params.rank for t in result.trials}
    assert 0 in ranks and ranks - {0}, ranks
    assert all(t.params.bias_regularization is not None for t in result.trials)


def test_a_second_tuning_starts_from_the_previous_best(tmp_path):
    record = StudyRecord(study_storage(tmp_path), "rating/ratings/local")
    first = search_ratings(
        planted_ratings(), RANK_AND_LAMBDA, seed=1, budget=Budget(8), record=record
    )
    second = search_ratings(
        planted_ratings(seed=1), RANK_AND_LAMBDA, seed=2, budget=Budget(3), record=record
    )
    assert searched(second.trials)[0] == searched([first.best])[0]
    assert (tmp_path / "optuna.db").exists()
    # another model's studies are not its
    other = StudyRecord(record.storage, "ranking/ratings/local")
    third = search_ratings(
        planted_ratings(), RANK_AND_LAMBDA, seed=2, budget=Budget(1), record=other
    )
    fresh = search_ratings(planted_ratings(), RANK_AND_LAMBDA, seed=2, budget=Budget(1))
    assert searched(third.trials) == searched(fresh.trials)


def test_a_fresh_search_starts_from_the_middle_of_every_range():
    result = search_ratings(planted_ratings(), rating_space({}), budget=Budget(2))
    first = result.trials[0].params
    # latent factors on, rank √(2·80) ≈ 13 (the range 2–256 capped at the 80 items),
    # λ √(0.005·10) ≈ 0.22, λ_b √(0.01·100) = 1
    assert first.rank == 13
    assert np.isclose(first.regularization, np.sqrt(0.005 * 10))
    assert np.isclose(first.bias_regularization, 1.0)
