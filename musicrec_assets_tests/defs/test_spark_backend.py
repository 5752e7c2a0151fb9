"""The same graph with `backend: spark`: tuning and training on Spark MLlib, everything else
unchanged."""

import duckdb
import mlflow
import pytest
from conftest import FAST_CONFIG, SERVING_ASSETS, TRAINING_ASSETS, run_pipeline, small_world

from musicrec_assets.datasets.synthetic import write_landing
from musicrec_assets.defs.resources import ModelSettings
from musicrec_assets.model.spark_als import missing_spark_requirement

pytestmark = pytest.mark.skipif(
    missing_spark_requirement() is not None, reason=str(missing_spark_requirement())
)


def test_graph_trains_on_spark_and_serves_as_usual(tmp_path):
    write_landing(small_world(seed=13), tmp_path / "landing")
    ratings = tmp_path / "landing" / "ratings" / "ratings.jsonl"
    lines = ratings.read_text().splitlines(keepends=True)
    ratings.write_text("".join(lines[1:]))
    grid = FAST_CONFIG | {"ranks": [4], "regularizations": [0.1], "iterations": 5}
    assert run_pipeline(tmp_path, ModelSettings(**grid), selection=TRAINING_ASSETS).success

    # new data draws a new split; the local champion's biases cannot be refit on Spark
    (ratings.parent / "later.jsonl").write_text(lines[0])
    settings = ModelSettings(backend="spark", **grid)
    trained = run_pipeline(tmp_path, settings, selection=TRAINING_ASSETS)
    [model] = trained.asset_materializations_for_node("als_model")
    run = mlflow.get_run(model.metadata["mlflow_run_id"].value)
    assert run.data.tags["backend"] == "spark"
    assert run.data.params["rating_use_biases"] == "False"  # Spark's explicit ALS: no biases
    # without biases, Spark's rating model loses to the bias baseline, and the champion rule
    # refuses a version whose rating model does (before any comparison with the champion)
    assert "is not better than the bias baseline" in run.data.tags["musicrec.promotion"]
    assert run.data.tags["musicrec.alias"] == "challenger"
    # the tables serve the champion (the local version 1) whichever backend runs the serving
    assert run_pipeline(tmp_path, settings, selection=SERVING_ASSETS).success
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT count(*), count(DISTINCT user_id), min(model_version) FROM user_recommendations"
        )
        assert rows.fetchall() == [(120 * 5, 120, "1")]
