"""The rows of the recommendation tables computed by Spark (``backend: spark``), by index: the
tables of :mod:`musicrec_assets.serving.tables`, which the warehouse names with ids when it
loads them (:func:`musicrec_assets.backends.spark.exchange.publish_top_n`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from musicrec_assets.backends.spark.factors import SparkFactors, write_factor_model
from musicrec_assets.backends.spark.topn import (
    predict_frame,
    similar_items_frame,
    top_n_items_frame,
    top_n_users_frame,
)
from musicrec_assets.model.factors import ModelPair

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def stored_models(models: ModelPair, folder: Path) -> dict[str, SparkFactors]:
    """The champion's models by role, written where executors read them; "list", what orders
    the users' lists, is the ranking model's where the lists do not blend in the rating."""
    stored = {
        role: write_factor_model(model, folder / role)
        for role, model in models.published_models().items()
    }
    return stored | ({} if "list" in stored else {"list": stored["ranking"]})


def _known(spark: SparkSession, seen: DataFrame, models: dict[str, SparkFactors]):
    """The model's users and items, and the interactions between them (the index maps only
    grow, so rows past the model's are ids that came after it was trained)."""
    ranking = models["ranking"]
    users = spark.range(ranking.n_users).selectExpr("CAST(id AS INT) AS user_idx")
    items = spark.range(ranking.n_items).selectExpr("CAST(id AS INT) AS item_idx")
    pairs = seen.where(f"user_idx < {ranking.n_users} AND item_idx < {ranking.n_items}").select(
        "user_idx", "item_idx"
    )
    return users, items, pairs


def user_recommendations(
    spark: SparkSession, models: dict[str, SparkFactors], seen: DataFrame, n: int
) -> DataFrame:
    """``(user_idx, rank, item_idx, score, predicted_rating)``: each user's top ``n`` unseen
    artists by the lists' model (``ModelPair.list_model``), the rating model's prediction
    beside (NULL without one)."""
    users, _, pairs = _known(spark, seen, models)
    top = top_n_items_frame(models["list"], users, pairs, n)
    if "rating" not in models:
        return top.selectExpr("*", "CAST(NULL AS DOUBLE) AS predicted_rating")
    return predict_frame(models["rating"], top).withColumnRenamed("prediction", "predicted_rating")


def artist_top_users(
    spark: SparkSession, models: dict[str, SparkFactors], seen: DataFrame, n: int
) -> DataFrame:
    """``(item_idx, rank, user_idx, score)``: each artist's top ``n`` users by the ranking
    model, its listeners left out."""
    _, items, pairs = _known(spark, seen, models)
    return top_n_users_frame(models["ranking"], items, pairs, n)


def similar_artists(
    spark: SparkSession, models: dict[str, SparkFactors], seen: DataFrame, n: int
) -> DataFrame:
    """``(item_idx, rank, similar_idx, similarity)``: the cosine of the ranking model's artist
    factors, ordered by that cosine shrunk by both artists' listeners (``topn.support_rows``):
    one count per artist comes to the driver, never the interactions."""
    _, _, pairs = _known(spark, seen, models)
    ranking = models["ranking"]
    counts = pairs.groupBy("item_idx").count().toPandas()
    support = np.zeros(ranking.n_items, dtype=np.int64)
    support[counts["item_idx"].to_numpy()] = counts["count"].to_numpy()
    return similar_items_frame(ranking, n, support)
