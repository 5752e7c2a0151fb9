"""The tuning a retrain reuses: one from before the ranking model is not one; one whose params
name the objective ``feedback`` (before it had its own name) is."""

import json

import pytest

from musicrec_assets.model.baselines import NeighbourParams
from musicrec_assets.model.factors import TrainingParams
from musicrec_assets.warehouse import model_tables
from musicrec_assets.warehouse.tables import connect


def test_a_tuning_from_before_the_ranking_model_is_not_reused(tmp_path):
    with connect(tmp_path / "w.duckdb") as con:
        assert not model_tables.has_current_tuning(con)
        con.execute("CREATE TABLE tuning_trials (trial INT, params VARCHAR, chosen BOOLEAN)")
        assert not model_tables.has_current_tuning(con)
        with pytest.raises(RuntimeError, match="materialize als_tuning again"):
            model_tables.chosen_params(con)
        con.execute("ALTER TABLE tuning_trials ADD COLUMN model VARCHAR")
        assert model_tables.has_current_tuning(con)


def test_a_tuning_that_named_the_objective_feedback_is_reused(tmp_path):
    # the chosen rows' params as a version before `objective` wrote them
    chosen = {
        "ranking": {"feedback": "implicit", "rank": 16, "regularization": 3.0, "alpha": 2.0},
        "rating": {"feedback": "explicit", "rank": 4, "regularization": 0.1},
        "item_knn": {"neighbours": 40, "similarity": "bm25", "feedback": "implicit"},
        "blend": {"blend_weight": 0.5, "feedback": "implicit"},
    }
    with connect(tmp_path / "w.duckdb") as con:
        con.execute("CREATE TABLE tuning_trials (model VARCHAR, params VARCHAR, chosen BOOLEAN)")
        for model, params in chosen.items():
            con.execute(
                "INSERT INTO tuning_trials VALUES (?, ?, true)", [model, json.dumps(params)]
            )

        settings = model_tables.chosen_params(con)

    assert settings.ranking == TrainingParams("ranking", 16, 3.0, alpha=2.0)
    assert settings.rating == TrainingParams("rating", 4, 0.1)
    assert settings.neighbours == NeighbourParams(40, "bm25")
    assert settings.blend_weight == 0.5 and settings.feedback == "explicit"
