"""The same graph with `backend: spark` in this process (`local[*]`): the serving tables Spark
computes from a champion equal the local ones, and a version trained on Spark has biases and
is compared as the champion rule says."""

import duckdb
import mlflow
import pandas as pd
import pytest
from harness import FAST_CONFIG, SERVING_ASSETS, TRAINING_ASSETS, run_pipeline, small_world

from musicrec_assets.backends.spark.als import missing_spark_requirement
from musicrec_assets.datasets.synthetic import write_landing
from musicrec_assets.defs.resources import ModelSettings

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        missing_spark_requirement() is not None, reason=str(missing_spark_requirement())
    ),
]
TABLES = {
    "user_recommendations": ["user_id", "rank"],
    "artist_top_users": ["artist_id", "rank"],
    "similar_artists": ["artist_id", "rank"],
}


def published(home) -> dict[str, pd.DataFrame]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return {
            table: con.execute(f"SELECT * FROM {table}").df().sort_values(key, ignore_index=True)
            for table, key in TABLES.items()
        }


def test_spark_serves_the_champion_as_the_local_backend_does_and_trains_with_biases(tmp_path):
    write_landing(small_world(seed=13), tmp_path / "landing")
    ratings = tmp_path / "landing" / "ratings" / "ratings.jsonl"
    lines = ratings.read_text().splitlines(keepends=True)
    ratings.write_text("".join(lines[1:]))
    grid = FAST_CONFIG | {"ranks": [4], "regularizations": [0.1], "iterations": 5}
    assert run_pipeline(tmp_path, ModelSettings(**grid)).success
    local = published(tmp_path)

    # the same champion's tables, computed by Spark and loaded back under the ids
    spark_grid = grid | {"backend": "spark", "ranking_regularizations": [1.0]}
    assert run_pipeline(tmp_path, ModelSettings(**spark_grid), selection=SERVING_ASSETS).success
    spark = published(tmp_path)
    for table in TABLES:
        assert list(spark[table].columns) == list(local[table].columns), table
        assert list(spark[table].dtypes) == list(local[table].dtypes), table
        numbers = [c for c in ("score", "predicted_rating", "similarity") if c in local[table]]
        pd.testing.assert_frame_equal(
            spark[table][numbers], local[table][numbers], check_exact=False, rtol=1e-5
        )
        # the same lists, but where two candidates' float32 scores tie to the last bits (summed
        # in another order by another block size): at every rank the scores agree (above),
        # so a different id there is the other of a tie
        listed = TABLES[table][0]
        candidate = next(c for c in local[table] if c.endswith("_id") and c != listed)
        assert (spark[table][candidate] != local[table][candidate]).mean() < 0.01, table

    # new data draws a new split; a version trained on Spark has the rating model's biases
    (ratings.parent / "later.jsonl").write_text(lines[0])
    trained = run_pipeline(tmp_path, ModelSettings(**spark_grid), selection=TRAINING_ASSETS)
    [model] = trained.asset_materializations_for_node("als_model")
    run = mlflow.get_run(model.metadata["mlflow_run_id"].value)
    assert run.data.tags["backend"] == "spark"
    assert run.data.params["rating_use_biases"] == "True"
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        rmse = dict(
            con.execute(
                "SELECT model, value FROM model_metrics WHERE metric = 'rmse' "
                "AND model_version = ?",
                [model.metadata["model_version"].value],
            ).fetchall()
        )
    # with biases the Spark rating model is the bias model's equal on this small world (120
    # users; without them it was 15 % worse): the cluster test holds it to beating the bias
    # baseline on the bundled sample, which the default settings are sized for
    assert rmse["rating"] < 1.02 * rmse["bias"] < rmse["global_mean"]
