"""Cross-validated search on Spark: :func:`~musicrec_assets.evaluation.tuning.search_folds`
over folds that only Spark reads (:mod:`~musicrec_assets.backends.spark.split`), fitted with
Spark's ALS and scored on the executors (:mod:`~musicrec_assets.backends.spark.metrics`).
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from musicrec_assets.backends.spark.baselines import fit_frame
from musicrec_assets.backends.spark.metrics import evaluate_spark, ranked_users_frame
from musicrec_assets.backends.spark.split import kfold_frames
from musicrec_assets.evaluation.tuning import (
    Budget,
    SearchResult,
    SearchSpace,
    StudyRecord,
    TrialCallback,
    search_folds,
)
from musicrec_assets.model.factors import Feedback, TrainingParams

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def materialize(spark: SparkSession, frame: DataFrame, folder: Path) -> DataFrame:
    """``frame`` written once as Parquet in ``folder`` and read back: every later use reads the
    files instead of recomputing the hashes, windows and joins that made it."""
    frame.write.mode("overwrite").parquet(folder.as_uri())
    return spark.read.parquet(folder.as_uri())


def cross_validate_spark(
    spark: SparkSession,
    train: DataFrame,
    shape: tuple[int, int],
    base_params: TrainingParams,
    candidates: SearchSpace | list[dict[str, Any]],
    workdir: Path,
    feedback: Feedback,
    n_folds: int = 3,
    seed: int = 42,
    k: int = 10,
    on_trial: TrialCallback | None = None,
    max_ranked_users: int = 0,
    budget: Budget | None = None,
    record: StudyRecord | None = None,
) -> SearchResult:
    """:func:`~musicrec_assets.evaluation.tuning.cross_validate` with Spark doing the work.

    Parameters
    ----------
    train : DataFrame
        ``(user_idx, item_idx, value)`` of the training part; never the held-out part.
    shape : (n_users, n_items)
        Of the whole matrix.
    workdir : Path
        Shared storage for the folds and each trial's model (removed once scored).

    The other parameters are :func:`~musicrec_assets.evaluation.tuning.cross_validate`'s.
    """
    if isinstance(candidates, SearchSpace):
        candidates = candidates.within_shape(shape)
    folds = []
    for index, (fold_train, validation) in enumerate(
        kfold_frames(train, n_folds=n_folds, seed=seed)
    ):
        fold_train = materialize(spark, fold_train, workdir / f"fold-{index}" / "train")
        validation = materialize(spark, validation, workdir / f"fold-{index}" / "validation")
        ranked = materialize(
            spark,
            ranked_users_frame(validation, max_ranked_users, seed),
            workdir / f"fold-{index}" / "ranked",
        )
        folds.append((fold_train, validation, ranked))
    model_folders = (workdir / f"model-{number}" for number in itertools.count())

    def fit(fold_train: DataFrame, params: TrainingParams):
        return fit_frame(spark, fold_train, params, next(model_folders), *shape)

    def score(model, fold_train: DataFrame, validation: DataFrame, ranked: DataFrame):
        try:
            return evaluate_spark(model, fold_train, validation, feedback, k, ranked)
        finally:
            shutil.rmtree(model.folder, ignore_errors=True)

    return search_folds(
        folds, base_params, candidates, fit, score, k, on_trial, seed, budget, record
    )
