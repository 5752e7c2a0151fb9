"""The training side's tables: ``tuning_trials`` (every CV trial) and ``model_metrics``
(every trained version's held-out scores, its ranking and rating models beside the
baselines)."""

from __future__ import annotations

import json
from datetime import datetime

import duckdb
import pandas as pd

from musicrec_assets.evaluation.promotion import CandidateSettings
from musicrec_assets.model.baselines import NeighbourParams
from musicrec_assets.model.factors import Feedback, TrainingParams, params_fields
from musicrec_assets.warehouse.tables import publish_table, table_exists, transaction

MODEL_METRICS_SCHEMA = """
CREATE TABLE IF NOT EXISTS model_metrics (
    model_version VARCHAR NOT NULL,
    mlflow_run_id VARCHAR NOT NULL,
    trained_at    TIMESTAMP NOT NULL,
    feedback      VARCHAR NOT NULL,
    model         VARCHAR NOT NULL,
    metric        VARCHAR NOT NULL,
    value         DOUBLE NOT NULL
)"""


def publish_trials(con: duckdb.DuckDBPyConnection, trials: pd.DataFrame) -> int:
    """Replace ``tuning_trials`` with this tuning's trials; returns the row count."""
    return publish_table(con, "tuning_trials", [trials])


def has_current_tuning(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``tuning_trials`` holds a tuning that :func:`chosen_params` can reuse (one of
    each model, from since there is a ranking model)."""
    return table_exists(con, "tuning_trials") and "model" in {
        name for name, *_ in con.execute("DESCRIBE tuning_trials").fetchall()
    }


def chosen_params(con: duckdb.DuckDBPyConnection) -> CandidateSettings:
    """The settings of the last tuning's best trial of each model (retraining reuses them);
    a tuning of an older version names the objective ``feedback`` (:func:`params_fields`)."""
    if not table_exists(con, "tuning_trials"):
        raise RuntimeError("no tuning yet: materialize als_tuning first")
    if not has_current_tuning(con):
        raise RuntimeError(
            "the last tuning predates the ranking model: materialize als_tuning again"
        )
    chosen = {
        model: params_fields(json.loads(params))
        for model, params in con.execute(
            "SELECT model, params FROM tuning_trials WHERE chosen"
        ).fetchall()
    }
    return CandidateSettings(
        ranking=TrainingParams(**chosen["ranking"]),
        rating=TrainingParams(**chosen["rating"]) if "rating" in chosen else None,
        neighbours=NeighbourParams(**chosen["item_knn"]) if "item_knn" in chosen else None,
        blend_weight=chosen["blend"]["blend_weight"] if "blend" in chosen else 0.0,
    )


def record_model_metrics(
    con: duckdb.DuckDBPyConnection,
    model_version: str,
    mlflow_run_id: str,
    trained_at: datetime,
    feedback: Feedback,
    scores: dict[str, dict[str, float]],
) -> None:
    """Append one row per (model, metric) of ``scores`` ("ranking", "rating" and each
    baseline)."""
    rows = pd.DataFrame(
        [
            (model_version, mlflow_run_id, trained_at, feedback, name, metric, value)
            for name, values in scores.items()
            for metric, value in values.items()
        ],
        columns=[
            "model_version",
            "mlflow_run_id",
            "trained_at",
            "feedback",
            "model",
            "metric",
            "value",
        ],
    )
    with transaction(con):
        con.execute(MODEL_METRICS_SCHEMA)
        con.register("new_metrics", rows)
        con.execute("INSERT INTO model_metrics SELECT * FROM new_metrics")
        con.unregister("new_metrics")


def artist_names(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """(artist_id, name) of every indexed artist and every artist with tags (which tags may
    place), name NULL where the catalogue has none."""
    tagged = " UNION SELECT artist_id FROM artist_tags" if table_exists(con, "artist_tags") else ""
    return con.execute(
        f"""SELECT a.artist_id, n.name FROM (SELECT artist_id FROM artist_index{tagged}) a
            LEFT JOIN artists n ON n.id = a.artist_id"""
    ).df()
