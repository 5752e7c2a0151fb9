"""The baselines of :mod:`musicrec_assets.model.baselines` fitted on a Spark interaction frame
and written as :class:`~musicrec_assets.backends.spark.factors.SparkFactors` folders by Spark's
own writers, so that no interaction and no factor passes through the driver (only μ does).

The models are the local ones to float rounding: the same factors, biases and params. Item-kNN
has no Spark version: its scores are dense users × items, a local-only baseline.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from musicrec_assets.backends.spark.als import bias_sweep, fit_spark_frame
from musicrec_assets.backends.spark.factors import Side, SparkFactors, write_side
from musicrec_assets.model.baselines import BIAS_PARAMS
from musicrec_assets.model.factors import Feedback, TrainingParams

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession


def fit_spark_baselines(
    train: DataFrame, feedback: Feedback, folder: Path, n_users: int, n_items: int
) -> dict[str, SparkFactors]:
    """Every Spark baseline that applies to the feedback kind, by name: "global_mean" and
    "bias" for ratings, "most_popular" for both, as
    :func:`~musicrec_assets.model.baselines.fit_baselines` without item-kNN.

    Parameters
    ----------
    train : DataFrame
        ``user_idx INT, item_idx INT, value FLOAT`` training interactions, one row per pair.
    feedback : "explicit" or "implicit"
        What ``value`` holds, ratings or play counts.
    folder : Path
        Each model is written to ``folder/<name>/``; on a cluster, storage every executor sees.
    n_users, n_items : int
        The matrix's shape: every user and item gets a row, as the local models have.
    """
    folder = Path(folder)
    models = {"most_popular": _fit_most_popular(train, folder / "most_popular", n_users, n_items)}
    if feedback == "explicit":
        models = {
            "global_mean": _fit_global_mean(train, folder / "global_mean", n_users, n_items),
            "bias": fit_bias_frame(train, folder / "bias", n_users, n_items),
            **models,
        }
    for model in models.values():
        model.folder.mkdir(parents=True, exist_ok=True)
        model.write_meta()
    return models


def _fit_most_popular(train: DataFrame, folder: Path, n_users: int, n_items: int) -> SparkFactors:
    """x_u = 1, y_i = the number of training users of item i."""
    from pyspark.sql import functions as F

    popularity = train.groupBy("item_idx").agg(F.count(F.lit(1)).alias("popularity"))
    model = SparkFactors(
        folder=folder,
        params=TrainingParams(objective="ranking", rank=1, regularization=0.0, iterations=0),
        global_mean=0.0,
        has_biases=False,
        n_users=n_users,
        n_items=n_items,
    )
    _write_all_rows(train, model, "users", "user_idx", factors=F.array(F.lit(1.0)))
    factors = F.array(F.coalesce(F.col("popularity"), F.lit(0)))
    _write_all_rows(train, model, "items", "item_idx", popularity, factors)
    return model


def _fit_global_mean(train: DataFrame, folder: Path, n_users: int, n_items: int) -> SparkFactors:
    """Rank 0, zero biases: μ for every pair."""
    model = SparkFactors(
        folder=folder,
        params=TrainingParams(objective="rating", rank=0, regularization=0.0, iterations=0),
        global_mean=_mean(train),
        has_biases=True,
        n_users=n_users,
        n_items=n_items,
    )
    _write_all_rows(train, model, "users", "user_idx")
    _write_all_rows(train, model, "items", "item_idx")
    return model


def fit_frame(
    spark: SparkSession,
    train: DataFrame,
    params: TrainingParams,
    folder: Path,
    n_users: int,
    n_items: int,
) -> SparkFactors:
    """``params`` fitted on Spark: its ALS (:func:`fit_spark_frame`), or at rank 0 the biases
    alone (:func:`fit_bias_frame`), which Spark's ALS refuses: the rating search's bias-model
    point and the model a losing rating model falls back to."""
    if params.rank == 0:
        return fit_bias_frame(train, folder, n_users, n_items, params)
    return fit_spark_frame(spark, train, params, folder, n_users, n_items)


def fit_bias_frame(
    train: DataFrame, folder: Path, n_users: int, n_items: int, params: TrainingParams = BIAS_PARAMS
) -> SparkFactors:
    """μ + b_u + b_i by the updates of rank-0 explicit ALS with a plain λ (``fit_bias_model``):
    from zero biases, each pass sets ``b_u = Σ_i (r_ui − μ − b_i) / (n_u + λ)``
    (:func:`~musicrec_assets.backends.spark.als.bias_sweep`), then the same for items from the
    new user biases; a row without ratings keeps 0."""
    from pyspark.sql import functions as F

    mean = _mean(train)
    offset = F.col("value").cast("double") - mean
    scored = train.select(
        "user_idx", "item_idx", offset.alias("offset"), F.lit(0.0).alias("prediction")
    ).persist()
    user_bias = item_bias = None
    for _ in range(params.iterations):
        user_bias = bias_sweep(scored, "user_idx", item_bias, "item_idx", params)
        item_bias = bias_sweep(scored, "item_idx", user_bias, "user_idx", params)
    model = SparkFactors(
        folder=folder,
        params=params,
        global_mean=mean,
        has_biases=True,
        n_users=n_users,
        n_items=n_items,
    )
    _write_all_rows(train, model, "users", "user_idx", user_bias)
    _write_all_rows(train, model, "items", "item_idx", item_bias)
    scored.unpersist()
    return model


def _mean(train: DataFrame) -> float:
    """μ, the mean training value (0 without any, as ``fit_explicit_als`` has it)."""
    from pyspark.sql import functions as F

    mean = train.agg(F.avg(F.col("value").cast("double"))).first()[0]
    return 0.0 if mean is None else float(mean)


def _write_all_rows(
    train: DataFrame,
    model: SparkFactors,
    side: Side,
    key: str,
    values: DataFrame | None = None,
    factors: Column | None = None,
) -> None:
    """Write one side of ``model`` (:func:`~musicrec_assets.backends.spark.factors.write_side`),
    a row per index up to the side's count: ``factors`` (a column over ``values``' columns;
    default empty, rank 0) and ``values``' ``bias`` if it has one (else 0; 0 too for an index
    ``values`` lacks)."""
    from pyspark.sql import functions as F

    rows = train.sparkSession.range(model.count(side)).select(F.col("id").cast("int").alias(key))
    bias = F.lit(0.0)
    if values is not None:
        rows = rows.join(values, key, "left")
        if "bias" in values.columns:
            bias = F.coalesce(F.col("bias"), bias)
    factors = F.array() if factors is None else factors
    write_side(
        model.folder,
        side,
        rows.select(F.col(key).alias("idx"), factors.alias("factors"), bias.alias("bias")),
    )
