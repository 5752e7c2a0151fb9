"""Champion / challenger on Spark: :func:`~musicrec_assets.evaluation.promotion.evaluate_candidate`
with the candidate fitted, the baselines fitted and every model scored by Spark, on frames the
driver never collects. Only the decision (:func:`~musicrec_assets.evaluation.promotion.decide`)
and the two fitted models, for MLflow, come back.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from musicrec_assets.backends.spark.baselines import fit_frame, fit_spark_baselines
from musicrec_assets.backends.spark.factors import write_factor_model
from musicrec_assets.backends.spark.metrics import (
    evaluate_spark,
    ranked_users_frame,
    rating_errors,
)
from musicrec_assets.backends.spark.tuning import materialize
from musicrec_assets.evaluation.promotion import (
    RANKING_BASELINES,
    RANKING_METRIC,
    RATING_BASELINES,
    RATING_METRIC,
    CandidateReport,
    CandidateSettings,
    Champion,
    beats_baselines,
    comparable_champion,
    decide,
    fit_each_role,
    paired_standard_error,
)
from musicrec_assets.evaluation.split import ids_digest
from musicrec_assets.model.factors import FactorModel, ModelPair, TrainingParams

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def split_fingerprint(
    train: DataFrame, test: DataFrame, user_ids: np.ndarray, artist_ids: np.ndarray
) -> str:
    """A digest of which pairs a split trains on and holds out, aggregated by Spark (an
    order-free sum of per-row hashes): the role of
    :func:`~musicrec_assets.evaluation.split.fingerprint` for splits only Spark reads."""
    from pyspark.sql import functions as F

    parts = train.select("user_idx", "item_idx", F.lit("train").alias("part")).unionByName(
        test.select("user_idx", "item_idx", F.lit("test").alias("part"))
    )
    total, rows = parts.select(
        F.sum(F.xxhash64("user_idx", "item_idx", "part").cast("decimal(38,0)")), F.count("*")
    ).first()
    digest = ids_digest(user_ids, artist_ids)
    digest.update(f"spark:{total}:{rows}".encode())
    return digest.hexdigest()


def evaluate_spark_candidate(
    spark: SparkSession,
    settings: CandidateSettings,
    train: DataFrame,
    test: DataFrame,
    ids: tuple[np.ndarray, np.ndarray],
    champion: Champion | None,
    workdir: Path,
    max_ranked_users: int = 0,
    seed: int = 42,
) -> CandidateReport:
    """Fit the candidate's models on ``train``, score them and the Spark baselines (most
    popular; for ratings bias and global mean: item-kNN is local only) on ``test``, and decide
    as the local backend does. ``workdir`` is shared storage for the models and the ranked
    users; ``ids`` name the rows and columns (their lengths are the matrix's shape)."""
    shape = (len(ids[0]), len(ids[1]))
    feedback = settings.feedback
    # Spark's ALS reports no per-iteration loss: record is never called
    fitted, history, fit_seconds = fit_each_role(
        settings,
        lambda role, params, record: fit_frame(spark, train, params, workdir / role, *shape),
    )
    ranked = materialize(
        spark, ranked_users_frame(test, max_ranked_users, seed), workdir / "ranked_users"
    )
    baselines = fit_spark_baselines(train, feedback, workdir / "baselines", *shape)
    judge = None
    if "rating" in fitted:
        # the lists are judged by whatever will predict the ratings, as the local backend does
        rating_scores = {
            name: rating_errors(model, test)
            for name, model in {"rating": fitted["rating"], **baselines}.items()
            if name == "rating" or name in RATING_BASELINES
        }
        falls_back = not beats_baselines(
            rating_scores, RATING_METRIC, False, "rating", RATING_BASELINES
        )
        judge = baselines["bias"] if falls_back else fitted["rating"]
    evaluated = {
        name: evaluate_spark(
            model, train, test, feedback, ranked=ranked, return_ndcg=True, judge=judge
        )
        for name, model in {**fitted, **baselines}.items()
    }
    scores = {name: metrics for name, (metrics, _) in evaluated.items()}
    pair = ModelPair(**{role: model.to_factor_model() for role, model in fitted.items()})
    pair = pair.with_ids(*ids)
    split_id = split_fingerprint(train, test, *ids)
    refits = itertools.count()

    def fit(frame: DataFrame, params: TrainingParams, callback=None) -> FactorModel:
        folder = workdir / f"champion-refit-{next(refits)}"
        return fit_frame(spark, frame, params, folder, *shape).to_factor_model()

    def score_stand_in(model: FactorModel) -> float:
        stored = write_factor_model(model.reindexed(*ids), workdir / "champion")
        return evaluate_spark(stored, train, test, feedback, ranked=ranked)[RANKING_METRIC]

    stand_in = comparable_champion(champion, split_id, pair, fit, train, ids)
    return decide(
        pair,
        history,
        fit_seconds,
        scores,
        split_id,
        ranked.count(),
        stand_in,
        score_stand_in,
        {
            name: paired_standard_error(evaluated["ranking"][1], evaluated[name][1])
            for name in RANKING_BASELINES
            if name in evaluated
        },
    )
