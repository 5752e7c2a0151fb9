"""Who fits ALS: the local fitters (numpy/scipy for ratings, ``implicit`` for play counts) or
Spark MLlib, all behind the one :class:`~musicrec_assets.model.factors.Fitter` shape."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from scipy.sparse import csr_matrix

from musicrec_assets.model.explicit_als import fit_explicit_als
from musicrec_assets.model.factors import (
    FactorModel,
    Feedback,
    Fitter,
    IterationCallback,
    TrainingParams,
)
from musicrec_assets.model.implicit_als import fit_implicit_als
from musicrec_assets.model.spark_als import fit_spark_als

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


# member names equal their values, so run config says `backend: spark`
class Backend(StrEnum):
    local = "local"
    spark = "spark"


LOCAL_FITTERS: dict[Feedback, Fitter] = {
    "explicit": fit_explicit_als,
    "implicit": fit_implicit_als,
}


def spark_fitter(spark: SparkSession, workdir: Path) -> Fitter:
    """Spark's ALS as a :class:`Fitter`, exchanging Parquet files under ``workdir``."""

    def fit(
        matrix: csr_matrix, params: TrainingParams, callback: IterationCallback | None = None
    ) -> FactorModel:
        del callback  # Spark's ALS reports no per-iteration loss
        return fit_spark_als(spark, matrix, params, workdir)

    return fit


def base_params(feedback: Feedback, backend: Backend, iterations: int, seed: int) -> TrainingParams:
    """The fixed settings tuning starts from; the grid overrides rank, λ (and α, confidence)."""
    return TrainingParams(
        feedback=feedback,
        rank=10,
        regularization=0.1,
        iterations=iterations,
        # Spark's explicit ALS has no biases: tune what it can fit
        use_biases=backend == Backend.local,
        seed=seed,
    )
