"""Champion and challenger: which model stands for the champion on this split, and when the
candidate takes the alias."""

import numpy as np
import pytest
from scipy.sparse import csr_matrix

from musicrec_assets.evaluation import promotion
from musicrec_assets.evaluation.split import fingerprint, train_test_split
from musicrec_assets.model.factors import FactorModel, TrainingParams

IDS = (np.array(["ann", "bob"]), np.array(["a1", "a2", "a3"]))
TRAIN = csr_matrix(np.array([[5.0, 0, 3], [0, 4, 1]]))


def model(**params) -> FactorModel:
    settings = TrainingParams(
        **{"feedback": "explicit", "rank": 2, "regularization": 0.1, **params}
    )
    return FactorModel(settings, np.ones((2, 2), np.float32), np.ones((3, 2), np.float32)).with_ids(
        *IDS
    )


def champion(split: str | None, **params) -> promotion.Champion:
    return promotion.Champion("1", model(**params), split)


def never_fit(*args):
    raise AssertionError("no refit expected")


def test_split_fingerprint_tells_splits_apart():
    matrix = csr_matrix(np.random.default_rng(0).integers(0, 3, size=(40, 30)).astype(float))
    split = train_test_split(matrix, seed=1)
    users, items = np.arange(40).astype(str), np.arange(30).astype(str)
    same = fingerprint(split.train, split.test, users, items)
    assert same == fingerprint(split.train.copy(), split.test.copy(), users, items)
    other = train_test_split(matrix, seed=2)
    assert fingerprint(other.train, other.test, users, items) != same
    assert fingerprint(split.train, split.test, users[::-1], items) != same
    # a separator inside an id cannot make two id lists read the same
    two, one = np.array(["a", "b"]), np.array(["a\x1fb", ""])
    assert fingerprint(split.train, split.test, two, items) != fingerprint(
        split.train, split.test, one, items
    )


def test_the_champion_scores_its_own_model_on_its_own_split():
    stand_in = promotion.comparable_champion(
        champion("s1", rank=4), "s1", model(), never_fit, TRAIN, IDS
    )
    assert stand_in.model.params.rank == 4 and not stand_in.refit


def test_on_another_split_the_champion_settings_are_refit():
    fitted = []

    def fit(matrix, params, callback=None):
        fitted.append(params)
        return model(rank=params.rank)

    stand_in = promotion.comparable_champion(
        champion("old split", rank=4), "s1", model(), fit, TRAIN, IDS
    )
    assert stand_in.refit and [p.rank for p in fitted] == [4]
    assert stand_in.model.params.rank == 4


def test_on_another_split_the_same_settings_are_the_candidate_itself():
    candidate = model()
    for split in ("old split", None):  # None: logged before splits were fingerprinted
        stand_in = promotion.comparable_champion(
            champion(split), "s1", candidate, never_fit, TRAIN, IDS
        )
        assert stand_in.model is candidate and stand_in.refit


def test_a_champion_for_other_feedback_is_not_compared():
    stand_in = promotion.comparable_champion(
        champion("s1", feedback="implicit"), "s1", model(), never_fit, TRAIN, IDS
    )
    assert stand_in.model is None
    assert stand_in.reason == "the champion was trained on implicit feedback"
    decision, reason = promotion.should_promote(0.9, None, False, no_champion=stand_in.reason)
    assert decision and reason == stand_in.reason


def test_settings_this_backend_cannot_fit_leave_nothing_to_compare():
    def spark_fit(matrix, params, *ids):
        raise ValueError("Spark's explicit ALS has no biases: set use_biases=False")

    stand_in = promotion.comparable_champion(
        champion("old split", use_biases=True), "s1", model(use_biases=False), spark_fit, TRAIN, IDS
    )
    assert stand_in.model is None and "has no biases" in stand_in.reason


def test_no_champion_is_said_so():
    stand_in = promotion.comparable_champion(None, "s1", model(), never_fit, TRAIN, IDS)
    assert stand_in.model is None and stand_in.reason == "no champion yet"


@pytest.mark.parametrize(
    ("candidate", "champion_score", "tie_promotes", "promoted"),
    [
        (0.9, None, False, True),
        (0.8, 0.9, False, True),  # lower RMSE is better
        (0.9, 0.9, False, False),
        (0.9, 0.9, True, True),
        (1.0, 0.9, True, False),
    ],
)
def test_should_promote(candidate, champion_score, tie_promotes, promoted):
    decision, reason = promotion.should_promote(candidate, champion_score, False, tie_promotes)
    assert decision is promoted and reason
