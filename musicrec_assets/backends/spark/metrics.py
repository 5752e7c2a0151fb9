"""The metrics of :func:`musicrec_assets.evaluation.metrics.evaluate` on Spark frames, for a
model stored as :class:`~musicrec_assets.backends.spark.factors.SparkFactors`.

Same keys, same definitions (see :mod:`musicrec_assets.evaluation.metrics`). Each ranked user's
training and held-out items travel to the executors grouped per user, in blocks, with the
user's stored factors; each task reads the item vectors from the model folder, ranks its block
with the kernel of :mod:`musicrec_assets.backends.spark.topn` (the lists the tables publish)
and scores it with :func:`~musicrec_assets.evaluation.metrics.stats_of_lists`; Spark averages
the per-user rows. Only the averages reach the driver.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from musicrec_assets.backends.spark.topn import (
    block_matrix,
    block_vectors,
    predict_frame,
    rank_block,
    stored_factors,
)
from musicrec_assets.evaluation.metrics import liked_items, stats_of_lists
from musicrec_assets.model.factors import Feedback

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from musicrec_assets.backends.spark.factors import SparkFactors

_PER_USER = (
    "user_idx int, hits long, n_relevant long, ndcg double, ap double, ndcg_liked double, "
    "top_items array<int>"
)


def ranked_users_frame(test: DataFrame, max_users: int, seed: int) -> DataFrame:
    """``user_idx`` of the users to rank: all with held-out rows when there are at most
    ``max_users`` of them (or ``max_users`` is 0), else the ``max_users`` first in a seeded hash
    order, a uniform sample (not :func:`~musicrec_assets.evaluation.metrics.ranked_users`'
    one). Pass the same frame to every model compared."""
    from pyspark.sql import functions as F

    users = test.select("user_idx").distinct()
    if max_users <= 0:
        return users
    order = F.xxhash64(F.lit(seed), F.col("user_idx"))
    return users.orderBy(order, "user_idx").limit(max_users)


def evaluate_spark(
    model: SparkFactors,
    train: DataFrame,
    test: DataFrame,
    feedback: Feedback,
    k: int = 10,
    ranked: DataFrame | None = None,
    return_ndcg: bool = False,
    judge: SparkFactors | None = None,
) -> dict[str, float] | tuple[dict[str, float], np.ndarray]:
    """All metrics of a stored model on held-out frames, as
    :func:`~musicrec_assets.evaluation.metrics.evaluate` computes them on matrices.

    Parameters
    ----------
    model : SparkFactors
        Scored through both sides' ``vectors``; a rating model (``params.objective ==
        "rating"``) on ratings adds the rating errors.
    train, test : DataFrame
        ``user_idx, item_idx, value`` training and held-out interactions (ratings or plays),
        one row per pair.
    feedback : "explicit" or "implicit"
        What the frames hold; ratings add ``ndcg_liked_at_{k}``.
    k : int
        Length of the ranked list.
    ranked : DataFrame, optional
        ``user_idx`` of the users the ranking metrics average over (e.g.
        :func:`ranked_users_frame`); default all with held-out rows. Rating errors always cover
        every held-out row.
    return_ndcg : bool
        Also return each of those users' NDCG@K, in user order (one float per user, which the
        driver collects), to compare two models user by user
        (:func:`~musicrec_assets.evaluation.promotion.paired_standard_error`).
    judge : SparkFactors, optional
        A rating model (ratings only) that judges the lists: adds "predicted_dislikes_at_{k}"
        (:func:`~musicrec_assets.evaluation.metrics.predicted_dislikes`).

    Returns
    -------
    dict
        The keys of ``evaluate``: "rmse", "mse", "mae" (ratings and a rating model only),
        "precision_at_{k}", "recall_at_{k}", "ndcg_at_{k}", "map_at_{k}",
        "ndcg_liked_at_{k}" (ratings only), "coverage_at_{k}", "predicted_dislikes_at_{k}"
        (with a judge); with ``return_ndcg``, and the users' NDCG@K.
    """
    from pyspark.sql import functions as F

    metrics: dict[str, float] = {}
    if feedback == "explicit" and model.params.objective == "rating":
        metrics.update(rating_errors(model, test))

    per_user = _per_user_stats(model, train, test, feedback, k, ranked).persist()
    try:
        liked = F.col("ndcg_liked")
        means = per_user.agg(
            F.avg(F.col("hits") / k),
            F.avg(F.col("hits") / F.col("n_relevant")),
            F.avg("ndcg"),
            F.avg("ap"),
            F.avg(F.when(~F.isnan(liked), liked)),
        ).first()
        covered = (
            per_user.select(F.explode("top_items").alias("item"))
            .where(F.col("item") >= 0)
            .agg(F.countDistinct("item"))
            .first()[0]
        )
        if return_ndcg:
            ndcg = per_user.select("user_idx", "ndcg").orderBy("user_idx").toPandas()["ndcg"]
        dislikes = None
        if judge is not None and feedback == "explicit":
            dislikes = _predicted_dislikes(per_user, judge, train)
    finally:
        per_user.unpersist()
    for name, value in zip(("precision", "recall", "ndcg", "map"), means[:4], strict=True):
        metrics[f"{name}_at_{k}"] = _number(value)
    if feedback == "explicit":
        metrics[f"ndcg_liked_at_{k}"] = _number(means[4])
    metrics[f"coverage_at_{k}"] = covered / model.n_items if model.n_items else 0.0
    if dislikes is not None:
        metrics[f"predicted_dislikes_at_{k}"] = dislikes
    return (metrics, ndcg.to_numpy(np.float64)) if return_ndcg else metrics


def rating_errors(model: SparkFactors, test: DataFrame) -> dict[str, float]:
    """ "rmse", "mse" and "mae" of a rating model on the held-out ratings ``test``."""
    from pyspark.sql import functions as F

    error = F.col("value").cast("double") - F.col("prediction")
    squared, absolute = (
        predict_frame(model, test.select("user_idx", "item_idx", "value"))
        .agg(F.avg(error * error), F.avg(F.abs(error)))
        .first()
    )
    return {"rmse": math.sqrt(_number(squared)), "mse": _number(squared), "mae": _number(absolute)}


def _predicted_dislikes(per_user: DataFrame, judge: SparkFactors, train: DataFrame) -> float:
    """:func:`~musicrec_assets.evaluation.metrics.predicted_dislikes` of the lists in
    ``per_user``: the share of listed artists whose rating ``judge`` predicts below the
    user's mean training rating (+inf for a user without training ratings, as
    :func:`~musicrec_assets.evaluation.metrics.user_means`)."""
    from pyspark.sql import functions as F

    listed = per_user.select("user_idx", F.explode("top_items").alias("item_idx")).where(
        F.col("item_idx") >= 0
    )
    means = train.groupBy("user_idx").agg(F.avg(F.col("value").cast("double")).alias("mean"))
    below = F.col("prediction") < F.coalesce(F.col("mean"), F.lit(math.inf))
    judged = predict_frame(judge, listed).join(means, "user_idx", "left")
    return _number(judged.agg(F.avg(below.cast("double"))).first()[0])


def _per_user_stats(
    model: SparkFactors,
    train: DataFrame,
    test: DataFrame,
    feedback: Feedback,
    k: int,
    ranked: DataFrame | None,
) -> DataFrame:
    """One row per ranked user with held-out rows (:data:`_PER_USER`): the user's list and its
    stats, ``ndcg_liked`` NaN for a user without liked items (or not on ratings)."""
    from pyspark.sql import functions as F

    def split_pairs(frame: DataFrame, name: str) -> DataFrame:
        # one list of (item, value) structs, split after: two collect_lists need not agree
        pairs = F.collect_list(F.struct("item_idx", "value")).alias("pairs")
        return (
            frame.groupBy("user_idx")
            .agg(pairs)
            .select(
                "user_idx",
                F.transform("pairs", lambda pair: pair["item_idx"]).alias(f"{name}_items"),
                F.transform("pairs", lambda pair: pair["value"]).alias(f"{name}_values"),
            )
        )

    relevant = split_pairs(test, "test")
    if ranked is not None:
        relevant = relevant.join(ranked.select("user_idx"), "user_idx", "left_semi")
    factors = stored_factors(model, "users", test).withColumnRenamed("idx", "user_idx")
    blocks = relevant.join(factors, "user_idx", "left").join(
        split_pairs(train, "train"), "user_idx", "left"
    )
    n_items = model.n_items
    top = min(k, n_items)

    def score_partition(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        items = model.vectors("items")
        for block in batches:
            rows = np.arange(len(block))
            seen = block_matrix(block["train_items"], None, n_items)
            index, _ = rank_block(block_vectors(model, "users", block), items, seen, top)
            test_block = block_matrix(block["test_items"], block["test_values"], n_items)
            stats = stats_of_lists(rows, index, test_block, k)
            ndcg_liked = np.full(len(block), np.nan)
            if feedback == "explicit":
                train_block = block_matrix(block["train_items"], block["train_values"], n_items)
                liked = stats_of_lists(rows, index, liked_items(train_block, test_block), k)
                ndcg_liked[liked.users] = liked.ndcg
            yield pd.DataFrame(
                {
                    "user_idx": block["user_idx"].to_numpy(np.int32),
                    "hits": stats.hits,
                    "n_relevant": stats.n_relevant,
                    "ndcg": stats.ndcg,
                    "ap": stats.average_precision,
                    "ndcg_liked": ndcg_liked,
                    "top_items": list(index),
                }
            )

    return blocks.mapInPandas(score_partition, _PER_USER)


def _number(value: float | None) -> float:
    """An aggregate as a float, NaN for the average of nothing (as numpy's mean of nothing)."""
    return float("nan") if value is None else float(value)
