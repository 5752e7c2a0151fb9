"""Serving: top-N for every user and fold-in of new users, against ``implicit`` on the same factors.

1. Top-10 for all users (users/s), already-seen items filtered:
   ``topn.top_n_items`` against implicit's batch
   ``model.recommend(userids, user_items, N=10, filter_already_liked_items=True)`` on an
   ``AlternatingLeastSquares`` whose user_factors/item_factors are set to the same float32
   arrays; both at their defaults (all cores). On (a) a Last.fm-2k model trained with
   ``fit_implicit_als`` (rank 64, λ 30, bm25 α 0.03; skipped when the data is absent) and
   (b) random factors for 100,000 users × 50,000 artists × 64 with ~40 seen artists per user.
   "same lists" is the share of users whose two top-10 lists are identical.
2. Fold-in latency (ms per new user, one user per call; the median over 200 users replayed as
   new of each one's best time):
   ``fold_in_user`` and ``recommend_new_user`` for an explicit model (the bundled sample, rank 10,
   biases; implicit has no explicit mode, so no reference) and for implicit models, against
   implicit's ``recalculate_user`` and ``recommend(..., recalculate_user=True)``, which are handed
   the confidence rows ready-made (ours starts from play counts), with ``num_threads=1``: with
   all cores each call pays for waking an OpenMP team (milliseconds on a loaded machine), which
   is not what one request should cost. Both implicit models use implicit's plain λ, so both
   sides solve the same least squares.

A ratio above 1 means ours is faster. The fold-in target (issues 23 and 25): ``fold_in_user``
at least as fast as ``recalculate_user`` (a ratio of 1 or more) at rank 64.

    .venv/bin/python benchmarks/bench_serve.py [--repeat N]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
import warnings
from collections.abc import Callable

import numpy as np
from common import (
    best_of_each,
    load_lastfm_plays,
    load_sample_ratings,
    print_environment,
    print_table,
    ratio,
    repeat_argument,
)
from implicit.cpu.als import AlternatingLeastSquares
from scipy.sparse import csr_matrix

from musicrec_assets.model.confidence import ConfidenceScaler
from musicrec_assets.model.explicit_als import fit_explicit_als
from musicrec_assets.model.factors import FactorModel, TrainingParams
from musicrec_assets.model.implicit_als import fit_implicit_als
from musicrec_assets.serving import fold_in, topn

N = 10
FOLD_IN_USERS = 200  # histories replayed per latency measurement
# implicit's plain λ, as fit_implicit_als records it: the synthetic model, whose params are
# these as written, had TrainingParams' default (λ scaled by each row's count, Spark's), so its
# fold-in solved another problem than recalculate_user and only 40% of the top-10s agreed
LASTFM_PARAMS = TrainingParams(
    "ranking",
    rank=64,
    regularization=30.0,
    alpha=0.03,
    confidence="bm25",
    weighted_regularization=False,
)
SYNTHETIC_PARAMS = dataclasses.replace(LASTFM_PARAMS, alpha=1.0, confidence="log1p")
SAMPLE_PARAMS = TrainingParams("rating", rank=10, regularization=0.1, iterations=15)


def implicit_twin(model: FactorModel, threads: int = 0) -> AlternatingLeastSquares:
    """An implicit ALS model holding ``model``'s factors (float32) and λ; 0 threads = all cores."""
    with warnings.catch_warnings():
        # the BLAS-threads advice is about fitting, which the twin never does
        warnings.simplefilter("ignore", RuntimeWarning)
        twin = AlternatingLeastSquares(
            factors=model.params.rank,
            regularization=model.params.regularization,
            alpha=1.0,
            num_threads=threads,
        )
    twin.user_factors = np.ascontiguousarray(model.user_factors, dtype=np.float32)
    twin.item_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)
    return twin


def top_n_row(name: str, model: FactorModel, seen: csr_matrix, repeat: int) -> list:
    twin = implicit_twin(model)
    users = np.arange(model.n_users)
    timed = best_of_each(
        repeat,
        {
            "ours": lambda: topn.top_n_items(model.user_vectors(), model.item_vectors(), seen, N),
            "implicit": lambda: twin.recommend(users, seen, N=N),
        },
    )
    ours, theirs = timed["ours"], timed["implicit"]
    same = np.mean(np.all(ours.result[0] == theirs.result[0], axis=1))
    return [
        name,
        f"{model.n_users / ours.seconds:,.0f}",
        f"{model.n_users / theirs.seconds:,.0f}",
        ratio(theirs.seconds, ours.seconds),
        f"{same:.1%}",
    ]


def synthetic_model(n_users=100_000, n_items=50_000, rank=64, seen_per_user=40, seed=0):
    """Random float32 factors and ~``seen_per_user`` distinct random seen items per user."""
    rng = np.random.default_rng(seed)
    model = FactorModel(
        params=SYNTHETIC_PARAMS,
        user_ids=np.arange(n_users).astype(str),
        item_ids=np.arange(n_items).astype(str),
        user_factors=rng.normal(0.0, 0.3, (n_users, rank)).astype(np.float32),
        item_factors=rng.normal(0.0, 0.3, (n_items, rank)).astype(np.float32),
    )
    items = rng.integers(0, n_items, (n_users, seen_per_user))
    plays = rng.integers(1, 500, (n_users, seen_per_user)).astype(np.float32)
    seen = csr_matrix(
        (plays.ravel(), items.ravel(), np.arange(0, items.size + 1, seen_per_user)),
        shape=(n_users, n_items),
    )
    seen.sum_duplicates()  # a repeated draw becomes one entry
    return model, seen


def median_best_ms(repeat: int, calls: dict[str, tuple[Callable, list]]) -> dict[str, float]:
    """For each variant ``name: (call, inputs)``: every ``call(input)``'s best time over
    ``repeat`` passes, then the median over inputs, in ms. Variants take turns input by input,
    so that a burst of load on the shared machine hits each of them alike."""
    n_inputs = len(next(iter(calls.values()))[1])
    best = {name: np.full(n_inputs, np.inf) for name in calls}
    for _ in range(repeat):
        for position in range(n_inputs):
            for name, (call, inputs) in calls.items():
                started = time.perf_counter()
                call(inputs[position])
                best[name][position] = min(best[name][position], time.perf_counter() - started)
    return {name: float(np.median(seconds)) * 1e3 for name, seconds in best.items()}


def fold_in_rows(name: str, model: FactorModel, history: csr_matrix, repeat: int) -> list:
    """Latency of ``fold_in_user`` and ``recommend_new_user`` with ``history``'s rows as new
    users, next to implicit's ``recalculate_user`` and ``recommend(recalculate_user=True)``."""
    histories = [(history[row].indices, history[row].data) for row in range(history.shape[0])]
    calls = {
        "fold_in_user": (lambda h: fold_in.fold_in_user(model, *h), histories),
        "recommend_new_user": (lambda h: fold_in.recommend_new_user(model, *h, N), histories),
    }
    if model.params.objective == "rating":
        ms = median_best_ms(repeat, calls)
        return [[name, call, f"{ms[call]:.3f}", "—", "—", "—"] for call in calls]

    twin = implicit_twin(model, threads=1)
    scaler = ConfidenceScaler.from_extras(model.params.confidence, model.params.alpha, model.extras)
    confidences = [scaler.transform(history[row]) for row in range(history.shape[0])]
    references = {
        "fold_in_user": (lambda c: twin.recalculate_user(0, c), confidences),
        "recommend_new_user": (
            lambda c: twin.recommend(0, c, N=N, recalculate_user=True),
            confidences,
        ),
    }
    ms = median_best_ms(repeat, {**calls, **{f"implicit {k}": v for k, v in references.items()}})
    same = np.mean(
        [
            np.array_equal(
                fold_in.recommend_new_user(model, *h, N)[0],
                twin.recommend(0, c, N=N, recalculate_user=True)[0],
            )
            for h, c in zip(histories, confidences, strict=True)
        ]
    )
    rows = []
    for call in calls:
        ours, theirs = ms[call], ms[f"implicit {call}"]
        agreement = f"{same:.0%}" if call == "recommend_new_user" else ""
        rows.append([name, call, f"{ours:.3f}", f"{theirs:.3f}", ratio(theirs, ours), agreement])
    return rows


def sample_rows(matrix: csr_matrix, n_rows: int, seed: int = 0) -> csr_matrix:
    rows = np.random.default_rng(seed).choice(
        matrix.shape[0], min(n_rows, matrix.shape[0]), replace=False
    )
    return matrix[np.sort(rows)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    repeat_argument(parser)
    args = parser.parse_args()
    print_environment(f"bench_serve: best of {args.repeat}")

    top_n, fold_in = [], []
    ratings, _, _ = load_sample_ratings()
    explicit = fit_explicit_als(ratings, SAMPLE_PARAMS)
    fold_in += fold_in_rows(
        f"sample, explicit rank 10 ({ratings.shape[1]:,} artists)",
        explicit,
        sample_rows(ratings, FOLD_IN_USERS),
        args.repeat,
    )
    lastfm = load_lastfm_plays()
    if lastfm is not None:
        plays, _, _ = lastfm
        model = fit_implicit_als(plays, LASTFM_PARAMS)
        name = f"Last.fm-2k, bm25 rank 64 ({plays.shape[0]:,} × {plays.shape[1]:,})"
        top_n.append(top_n_row(name, model, plays, args.repeat))
        fold_in += fold_in_rows(name, model, sample_rows(plays, FOLD_IN_USERS), args.repeat)

    started = time.perf_counter()
    model, seen = synthetic_model()
    print(f"synthetic model built in {time.perf_counter() - started:.1f} s ({seen.nnz:,} seen)")
    name = f"synthetic, log1p rank 64 ({model.n_users:,} × {model.n_items:,})"
    top_n.append(top_n_row(name, model, seen, args.repeat))
    fold_in += fold_in_rows(name, model, sample_rows(seen, FOLD_IN_USERS), args.repeat)

    print_table(
        f"top-{N} for every user, seen items filtered",
        ["model", "ours users/s", "implicit users/s", "ours ÷ implicit", "same lists"],
        top_n,
    )
    print_table(
        f"fold-in latency, one new user per call: median over {FOLD_IN_USERS} users replayed "
        "as new of each one's best time",
        [
            "model",
            "call",
            "ours ms/user",
            "implicit ms/user",
            "ours ÷ implicit speed",
            "same top-10",
        ],
        fold_in,
    )


if __name__ == "__main__":
    main()
