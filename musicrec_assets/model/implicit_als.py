"""Implicit-feedback ALS (Hu, Koren & Volinsky 2008) through the ``implicit`` package.

Minimizes, over all user × item pairs::

    Σ_u,i c_ui (p_ui − x_u·y_i)² + λ (Σ_u ‖x_u‖² + Σ_i ‖y_i‖²)

with p_ui = 1 for observed entries and 0 otherwise, and c_ui = 1 + α·scale(plays_ui) on observed
entries (1 elsewhere), scale from :mod:`musicrec_assets.model.confidence`.

``implicit`` reads the value of an observed entry as c_ui itself, so we hand it the matrix
``1 + α·scale(plays)`` and leave its own ``alpha`` at 1. Unlike Spark MLlib, ``implicit`` does
not scale λ by each row's count: the model records ``weighted_regularization=False`` whatever
was asked (fold-in reads it), and the λ that matches a Spark model is one to two orders of
magnitude larger than Spark's regParam.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
from implicit.cpu.als import AlternatingLeastSquares
from scipy.sparse import csr_matrix
from threadpoolctl import threadpool_limits

from musicrec_assets.model.confidence import fit_confidence
from musicrec_assets.model.factors import FactorModel, IterationCallback, TrainingParams


def fit_implicit_als(
    plays: csr_matrix,
    params: TrainingParams,
    callback: IterationCallback | None = None,
) -> FactorModel:
    """Factorize a users × items play-count matrix with implicit's CPU ALS.

    Parameters
    ----------
    plays : csr_matrix
        users × items play counts; stored entries are the observed interactions.
    params : TrainingParams
        ``objective`` must be "ranking". Uses rank, regularization, iterations, alpha,
        confidence and seed.
    callback : callable, optional
        Called after every iteration as ``callback(iteration, {"train_loss": ...})`` with
        implicit's training loss (computing it costs about one extra half-step).

    Returns
    -------
    FactorModel
        float32 factors, no biases, the confidence scaler's statistics in ``extras``; its
        params with ``weighted_regularization=False``.
    """
    if params.objective != "ranking":
        raise ValueError(f"fit_implicit_als fits a ranking model, not a {params.objective!r} one")
    plays = csr_matrix(plays)
    scaler = fit_confidence(plays, params.confidence, params.alpha)
    confidence = scaler.transform(plays)

    # implicit's own threads do the parallel work; a multithreaded BLAS underneath them
    # oversubscribes the cores and slows fitting down (implicit warns about it)
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=params.rank,
            regularization=params.regularization,
            alpha=1.0,
            dtype=np.float32,
            iterations=params.iterations,
            calculate_training_loss=callback is not None,
            random_state=params.seed,
        )
        model.fit(
            confidence,
            show_progress=False,
            callback=None if callback is None else _forward_loss(callback),
        )

    return FactorModel(
        params=dataclasses.replace(params, weighted_regularization=False),
        user_factors=np.asarray(model.user_factors, dtype=np.float32),
        item_factors=np.asarray(model.item_factors, dtype=np.float32),
        extras=scaler.extras(),
    )


def _forward_loss(callback: IterationCallback) -> Callable[[int, float, float], None]:
    """Adapts implicit's ``callback(iteration, elapsed, loss)`` to ours."""

    def on_iteration(iteration: int, _elapsed: float, loss: float) -> None:
        callback(iteration, {"train_loss": float(loss)})

    return on_iteration
