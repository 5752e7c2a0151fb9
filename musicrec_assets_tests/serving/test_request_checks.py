"""A new listener's (or a new artist's) ratings are judged as ingestion judges data: a rating
outside 0.5–5.0, or plays that are negative or not finite, are refused with the entries named,
never folded in (a rating of 99 gave scores of 131)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.sparse import csr_matrix

from musicrec_assets.model.explicit_als import fit_explicit_als
from musicrec_assets.model.factors import ModelPair, TrainingParams
from musicrec_assets.model.implicit_als import fit_implicit_als
from musicrec_assets.serving.recommender import Recommender


def _recommender(feedback: str) -> Recommender:
    rng = np.random.default_rng(5)
    values = np.where(rng.random((40, 20)) < 0.3, rng.integers(1, 6, (40, 20)), 0)
    seen = csr_matrix(values.astype(float))
    user_ids = np.array([f"u{row}" for row in range(40)])
    item_ids = np.array([f"a{column}" for column in range(20)])
    objective = "rating" if feedback == "explicit" else "ranking"
    params = TrainingParams(objective=objective, rank=3, regularization=0.1, iterations=10)
    fit = fit_explicit_als if feedback == "explicit" else fit_implicit_als
    names = pd.DataFrame({"artist_id": item_ids, "name": item_ids})
    model = fit(seen, params).with_ids(user_ids, item_ids)
    models = ModelPair(model, model) if feedback == "explicit" else ModelPair(model)
    return Recommender(models, seen, names)


@pytest.fixture(scope="module")
def explicit() -> Recommender:
    return _recommender("explicit")


@pytest.fixture(scope="module")
def implicit() -> Recommender:
    return _recommender("implicit")


@pytest.mark.parametrize("bad", [99, -3, 0.0, 5.5, math.nan, math.inf, True, "5"], ids=repr)
def test_a_rating_outside_the_scale_is_refused_naming_the_entry(explicit, bad):
    ratings = [{"artist_id": "a1", "rating": 4.0}, {"artist_id": "a2", "rating": bad}]
    with pytest.raises(ValueError, match=r"rating must be a number from 0\.5 to 5\.0") as error:
        explicit.for_new_listener(ratings)
    assert "#2 (artist_id 'a2'" in str(error.value) and "a1" not in str(error.value)
    with pytest.raises(ValueError, match="#2 \\(user_id 'u2'"):
        explicit.for_new_artist([{"user_id": "u1", "rating": 3}, {"user_id": "u2", "rating": bad}])


@pytest.mark.parametrize("bad", [-1, -0.5, math.inf, -math.inf, math.nan], ids=repr)
def test_negative_or_infinite_plays_are_refused(implicit, bad):
    with pytest.raises(ValueError, match="plays must be a finite number of at least 0"):
        implicit.for_new_listener(
            [{"artist_id": "a1", "plays": 3}, {"artist_id": "a3", "plays": bad}]
        )


def test_every_bad_entry_is_named_and_good_ones_still_answer(explicit, implicit):
    ratings = [{"artist_id": f"a{i}", "rating": 99} for i in range(8)]
    with pytest.raises(ValueError, match="#1 .*#5 .* and 3 more"):
        explicit.for_new_listener(ratings)
    assert len(explicit.for_new_listener([{"artist_id": "a1", "rating": 0.5}], n=3).recommendations)
    assert len(implicit.for_new_listener([{"artist_id": "a1", "plays": 0}], n=3).recommendations)


def test_entries_that_are_not_objects_are_refused(explicit):
    with pytest.raises(ValueError, match="non-empty list of"):
        explicit.for_new_listener(["a1", 4])


def test_the_served_model_refuses_them_too(explicit):
    request = pd.DataFrame([{"ratings": '[{"artist_id": "a1", "rating": 131}]', "n": 3}])
    with pytest.raises(ValueError, match="refused: #1"):
        explicit.predict(request)
