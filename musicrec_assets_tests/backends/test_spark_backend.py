"""The same graph with `backend: spark` in this process (`local[*]`): the serving tables Spark
computes from a champion equal the local ones. (A version trained on Spark, its biases and
its scores: test_spark_cluster.py, on a real cluster.)"""

import duckdb
import pandas as pd
import pytest
from harness import FAST_CONFIG, SERVING_ASSETS, run_pipeline, small_world

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


def test_spark_serves_the_champion_as_the_local_backend_does(tmp_path):
    write_landing(small_world(seed=13), tmp_path / "landing")
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
