"""Training: hold-out quality of our ranking and rating models beside the peers, fit time, memory.

1. Quality, on FilmTrust (real half-star ratings) and Last.fm-2k (play counts), each skipped
   with a message when ``../shared/datasets`` lacks it, and on the bundled sample (synthetic
   ratings): one per-user 80/20 ``split.train_test_split(seed=42)`` for every model. Our
   *ranking model* (implicit ALS on the matrix, confidence from the rating or the plays) and
   our *rating model* (explicit ALS with biases, ratings only) are chosen by 3-fold CV on the
   training part only (``tuning.cross_validate``: the adaptive search over
   ``tuning.ranking_space`` on NDCG@10 and ``tuning.rating_space`` on RMSE, with tuning's default
   budget), and so is item-kNN's K and similarity (``tuning.neighbour_space``); each line says
   how many trials ran, how many were pruned and whether a best value is on an edge. Beside
   them: ``implicit``'s ALS with its defaults on the raw
   matrix (untuned), most popular, and for ratings the bias model and global mean. Columns:
   fit seconds (of the final fit on the training part), NDCG@10 (any held-out item relevant),
   NDCG@10 liked (held-out ratings ≥ the user's mean training rating), RMSE, coverage@10.
   FilmTrust targets: ranking NDCG@10 ≥ 0.60, rating RMSE < 0.80 (peers tuned on the held-out
   part: implicit ALS 0.602, most popular 0.566, item-kNN 0.498; Surprise SVD and bias RMSE
   0.801). Elsewhere the ranking model has to beat most popular and item-kNN.
2. Fit speed and peak memory of the two local fitters on the bundled sample and Last.fm-2k at
   fixed settings (rank 10, λ 0.1 ALS-WR for ratings; rank 64, λ 30 bm25 α 0.03 and log1p α 1,
   settings inside ``tuning.ranking_space``, for plays), with their hold-out
   scores at those settings.
3. The explicit speed target: 10 iterations at rank 10 on 100,000 synthetic ratings
   (1,000 users × 2,000 items) well under 1 s; Spark MLlib's local[2] ≈ 7 s is quoted from the
   issue, not measured here.
4. The cost floor: one ALS sweep (users then items) of our explicit solver, its
   ``explicit_als.CG_STEPS`` conjugate-gradient steps per row and half-step, timed by calling the
   half-steps as ``fit_explicit_als`` does (the fastest of at least 8 sweeps), against one
   iteration of ``implicit``'s CPU ALS (the fastest its fit callback reports over 8 iterations)
   on the same sparsity pattern and rank, BLAS limited to one thread around implicit as it asks.
   Ours is timed as the pipeline runs it (no limits; its rows cut into one part per core,
   solved in threads). Goal: ours within 2× of implicit's CG sweep. ``--cost-floor-only``
   runs this section alone.

5. Local vs Spark MLlib ``local[*]`` at equal settings (skip with ``--skip-spark``): our explicit
   ALS in Spark's setting (no biases, ALS-WR) vs Spark's explicit ALS on the sample and the
   synthetic 100,000 ratings, and ``implicit`` vs Spark's implicit ALS on Last.fm-2k (log1p α 1;
   Spark's λ = implicit's λ · n_users / nnz, see ``backends/spark/als.py``): fit seconds (Spark with
   a warm JVM), RMSE or NDCG@10, and the ratio. Target: ours ≥ 10× faster at equal quality.

Peak memory is what the fit allocates through numpy/Python (tracemalloc, a separate run).

    .venv/bin/python benchmarks/bench_train.py [--repeat N] [--skip-spark] [--quality-only]
                                               [--cost-floor-only]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, replace
from functools import partial

import numpy as np
from common import (
    best_of,
    load_filmtrust_ratings,
    load_lastfm_plays,
    load_sample_ratings,
    print_environment,
    print_table,
    ratio,
    repeat_argument,
    traced_peak_mib,
)
from implicit.cpu.als import AlternatingLeastSquares
from scipy.sparse import csr_matrix
from threadpoolctl import threadpool_limits

from musicrec_assets.evaluation.metrics import evaluate
from musicrec_assets.evaluation.promotion import (
    RANKING_BASELINES,
    RATING_BASELINES,
    beats_baselines,
    score_models,
)
from musicrec_assets.evaluation.split import train_test_split
from musicrec_assets.evaluation.tuning import (
    SearchResult,
    cross_validate,
    neighbour_space,
    ranking_space,
    rating_space,
)
from musicrec_assets.model import explicit_als as als
from musicrec_assets.model.baselines import (
    NeighbourParams,
    fit_bias_model,
    fit_global_mean,
    fit_item_knn,
    fit_most_popular,
)
from musicrec_assets.model.factors import (
    RANKING_ONLY,
    FactorModel,
    Feedback,
    ModelPair,
    TrainingParams,
)
from musicrec_assets.model.fitters import LOCAL_FITTERS, ranking_base_params, rating_base_params
from musicrec_assets.model.implicit_als import fit_implicit_als

SPARK_LOCAL2_SECONDS = 7.0  # quoted from the issue: Spark MLlib ALS, local[2], same fit
EXPLICIT = TrainingParams("rating", rank=10, regularization=0.1, iterations=15)
IMPLICIT = {
    "bm25 α 0.03": TrainingParams(
        "ranking", rank=64, regularization=30.0, alpha=0.03, confidence="bm25"
    ),
    "log1p α 1": TrainingParams(
        "ranking", rank=64, regularization=30.0, alpha=1.0, confidence="log1p"
    ),
}


SEED = 42
ITERATIONS = 15
N_FOLDS = 3
# the fields a search varies, to print the chosen settings short
SEARCHED = ("rank", "regularization", "confidence", "alpha", "neighbours", "similarity")


def timed_fit(fit, *args) -> tuple[FactorModel, float]:
    started = time.perf_counter()
    model = fit(*args)
    return model, time.perf_counter() - started


def implicit_untuned(matrix: csr_matrix) -> FactorModel:
    """``implicit``'s ALS with every default (rank 100, λ 0.01, α 1, 15 iterations) on the raw
    matrix as its confidences, as a user of the library would start."""
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(random_state=SEED)
        model.fit(csr_matrix(matrix, dtype=np.float32), show_progress=False)
    params = TrainingParams("ranking", rank=model.factors, regularization=model.regularization)
    return FactorModel(params, np.asarray(model.user_factors), np.asarray(model.item_factors))


def chosen(search: SearchResult, seconds: float) -> str:
    values = asdict(search.best.params)
    if values["objective"] == "rating":
        values = {name: value for name, value in values.items() if name not in RANKING_ONLY}
    settings = ", ".join(f"{name} {values[name]}" for name in SEARCHED if name in values)
    score = search.best.mean_metrics[search.primary_metric]
    return (
        f"{settings} (CV {search.primary_metric} {score:.4f}, best of "
        f"{len(search.trials)} trials, {search.n_pruned} pruned, {seconds:.0f} s"
        + (f"; on an edge: {', '.join(search.on_edge)}" if search.on_edge else "")
        + ")"
    )


def search(matrix, base, candidate_list, **options) -> tuple[SearchResult, float]:
    started = time.perf_counter()
    result = cross_validate(matrix, base, candidate_list, n_folds=N_FOLDS, seed=SEED, **options)
    return result, time.perf_counter() - started


def quality(name: str, matrix: csr_matrix, feedback: Feedback) -> None:
    """The models of section 1 on one data set, tuned on its training part, scored once."""
    split = train_test_split(matrix, seed=SEED)
    ratings = feedback == "explicit"
    ranking_search, ranking_seconds = search(
        split.train,
        ranking_base_params(feedback, ITERATIONS, SEED),
        ranking_space(feedback, {}),
        feedback=feedback,
    )
    knn_search, knn_seconds = search(
        split.train,
        NeighbourParams(),
        neighbour_space({}),
        fit=fit_item_knn,
        feedback=feedback,
    )
    notes = [
        f"ranking model: {chosen(ranking_search, ranking_seconds)}",
        f"item-kNN: {chosen(knn_search, knn_seconds)}",
    ]
    ranking, ranking_fit = timed_fit(fit_implicit_als, split.train, ranking_search.best.params)
    pair, fit_seconds = ModelPair(ranking), {"ranking": ranking_fit}
    if ratings:
        rating_search, rating_seconds = search(
            split.train,
            rating_base_params(ITERATIONS, SEED),
            rating_space({}),
            feedback=feedback,
        )
        notes.append(f"rating model: {chosen(rating_search, rating_seconds)}")
        rating, fit_seconds["rating"] = timed_fit(
            als.fit_explicit_als, split.train, rating_search.best.params
        )
        pair = ModelPair(ranking, rating)

    models = pair.models()
    peers = {
        "implicit_untuned": lambda: implicit_untuned(split.train),
        "item_knn": lambda: fit_item_knn(split.train, knn_search.best.params),
        "most_popular": lambda: fit_most_popular(split.train),
    }
    if ratings:
        peers |= {
            "bias": lambda: fit_bias_model(split.train),
            "global_mean": lambda: fit_global_mean(split.train),
        }
    for peer, fit in peers.items():
        models[peer], fit_seconds[peer] = timed_fit(fit)
    scores = score_models(models, split.train, split.test, feedback)

    columns = {"NDCG@10": "ndcg_at_10", "NDCG@10 liked": "ndcg_liked_at_10", "RMSE": "rmse"}
    if not ratings:
        columns = {"NDCG@10": "ndcg_at_10"}
    columns["coverage@10"] = "coverage_at_10"
    print_table(
        f"{name}: {matrix.shape[0]:,} users × {matrix.shape[1]:,} items, {split.train.nnz:,} "
        f"train / {split.test.nnz:,} held-out {'ratings' if ratings else 'plays'} (seed {SEED})",
        ["model", "fit s", *columns],
        [
            [model, f"{fit_seconds[model]:.2f}"]
            + [f"{values[metric]:.4f}" if metric in values else "—" for metric in columns.values()]
            for model, values in scores.items()
        ],
    )
    ranking_wins = beats_baselines(scores, "ndcg_at_10", True, "ranking", RANKING_BASELINES)
    notes.append(
        f"ranking model beats {' and '.join(RANKING_BASELINES)} on NDCG@10: {ranking_wins}"
    )
    if ratings:
        rating_wins = beats_baselines(scores, "rmse", False, "rating", RATING_BASELINES)
        notes.append(f"rating model beats {' and '.join(RATING_BASELINES)} on RMSE: {rating_wins}")
    print("\n".join(notes))


def fit_row(name, fit, params, split, repeat):
    """[name, s/iteration, peak MiB] of ``fit(train, params)`` and the model."""
    timed = best_of(repeat, lambda: fit(split.train, params))
    peak = traced_peak_mib(lambda: fit(split.train, params))
    return [name, f"{timed.seconds / params.iterations:.4f}", f"{peak:,.1f}"], timed.result


def baseline_row(name, model):
    return [name, "—", "—"], model


def explicit_sample(repeat: int) -> None:
    matrix, _, _ = load_sample_ratings()
    split = train_test_split(matrix, seed=42)
    rows = [
        fit_row("explicit ALS (ours)", als.fit_explicit_als, EXPLICIT, split, repeat),
        baseline_row("bias model μ+b_u+b_i", fit_bias_model(split.train)),
        baseline_row("global mean μ", fit_global_mean(split.train)),
    ]
    rmse = [evaluate(model, split.train, split.test, "explicit")["rmse"] for _, model in rows]
    print_table(
        f"bundled sample, explicit: {matrix.shape[0]} users × {matrix.shape[1]:,} artists, "
        f"{split.train.nnz:,} train / {split.test.nnz:,} test ratings; "
        f"rank {EXPLICIT.rank}, λ {EXPLICIT.regularization}, {EXPLICIT.iterations} iterations",
        ["model", "fit s/iter", "peak MiB", "test RMSE", "ALS RMSE ÷ this"],
        [
            row + [f"{error:.4f}", ratio(rmse[0], error)]
            for (row, _), error in zip(rows, rmse, strict=True)
        ],
    )


def implicit_lastfm(plays: csr_matrix, repeat: int) -> None:
    split = train_test_split(plays, seed=42)
    rows = [
        fit_row(f"implicit ALS, {name}", fit_implicit_als, params, split, repeat)
        for name, params in IMPLICIT.items()
    ] + [baseline_row("most popular", fit_most_popular(split.train))]
    metrics = [evaluate(model, split.train, split.test, "implicit") for _, model in rows]
    popular = metrics[-1]
    print_table(
        f"Last.fm-2k, implicit: {plays.shape[0]:,} users × {plays.shape[1]:,} artists, "
        f"{split.train.nnz:,} train / {split.test.nnz:,} test plays; rank 64, λ 30, "
        "15 iterations",
        ["model", "fit s/iter", "peak MiB", "NDCG@10", "P@10", "NDCG ÷ popular", "P ÷ popular"],
        [
            row
            + [
                f"{scores['ndcg_at_10']:.4f}",
                f"{scores['precision_at_10']:.4f}",
                ratio(scores["ndcg_at_10"], popular["ndcg_at_10"]),
                ratio(scores["precision_at_10"], popular["precision_at_10"]),
            ]
            for (row, _), scores in zip(rows, metrics, strict=True)
        ],
    )


def synthetic_ratings(n_users=1_000, n_items=2_000, nnz=100_000, seed=0) -> csr_matrix:
    """``nnz`` distinct (user, item) cells with uniform half-star ratings."""
    rng = np.random.default_rng(seed)
    cells = rng.choice(n_users * n_items, size=nnz, replace=False)
    ratings = rng.integers(1, 11, size=nnz) / 2.0
    return csr_matrix((ratings, np.divmod(cells, n_items)), shape=(n_users, n_items))


def speed_target(matrix: csr_matrix, repeat: int) -> None:
    rows = []
    for name, use_biases in (("no biases", False), ("with biases", True)):
        params = TrainingParams(
            "rating", rank=10, regularization=0.1, iterations=10, use_biases=use_biases
        )
        seconds = best_of(repeat, lambda p=params: als.fit_explicit_als(matrix, p)).seconds
        rows.append(
            [
                f"fit_explicit_als, {name}",
                f"{seconds:.3f}",
                f"≈{SPARK_LOCAL2_SECONDS:.0f} (quoted)",
                ratio(SPARK_LOCAL2_SECONDS, seconds),
            ]
        )
    print_table(
        f"explicit speed target: rank 10, 10 iterations, {matrix.nnz:,} ratings, "
        f"{matrix.shape[0]:,} × {matrix.shape[1]:,} (target: well under 1 s)",
        ["fit", "ours s", "Spark local[2] s", "speed-up (Spark ÷ ours)"],
        rows,
    )


def explicit_sweep_seconds(matrix: csr_matrix, rank: int, repeat: int) -> float:
    """Fastest users + items half-step pair of ``fit_explicit_als`` (no biases, ALS-WR), each
    sweep warm-started from the last as the fit's are."""
    params = TrainingParams("rating", rank=rank, regularization=0.1, use_biases=False)
    ratings = csr_matrix(matrix, dtype=np.float64)
    by_item = ratings.T.tocsr()
    rng = np.random.default_rng(0)
    users = rng.normal(0.0, 1.0 / np.sqrt(rank), (ratings.shape[0], rank)).astype(np.float32)
    items = rng.normal(0.0, 1.0 / np.sqrt(rank), (ratings.shape[1], rank)).astype(np.float32)
    user_side, item_side = (
        als._RowSystems(side, als.diagonal_penalty(params, np.diff(side.indptr)), 0.0, False)
        for side in (ratings, by_item)
    )

    def sweep():
        user_side.solve(items, users, als.CG_STEPS)
        item_side.solve(users, items, als.CG_STEPS)

    # as many sweeps as implicit's 8 iterations at least, so both minima are over alike samples
    return best_of(max(repeat, 8), sweep).seconds


def implicit_sweep_seconds(confidence: csr_matrix, rank: int, threads: int, use_cg: bool) -> float:
    """Fastest iteration of an 8-iteration ``implicit`` fit, as its callback reports it."""
    elapsed = []
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=rank,
            regularization=0.1,
            iterations=8,
            use_cg=use_cg,
            num_threads=threads,
            random_state=0,
        )
        model.fit(confidence, show_progress=False, callback=lambda _, s, __: elapsed.append(s))
    return min(elapsed)


def cost_floor(matrices: dict[str, tuple[csr_matrix, int]], repeat: int) -> None:
    variants = {
        "CG (default), all cores": (0, True),
        "CG (default), 1 thread": (1, True),
        "exact (use_cg=False), 1 thread": (1, False),
    }
    rows = []
    for name, (matrix, rank) in matrices.items():
        ours = explicit_sweep_seconds(matrix, rank, repeat)
        # implicit reads values as confidences; 1 + value keeps every one positive
        confidence = csr_matrix(matrix, dtype=np.float32, copy=True)
        confidence.data = 1.0 + confidence.data
        for variant, (threads, use_cg) in variants.items():
            theirs = implicit_sweep_seconds(confidence, rank, threads, use_cg)
            rows.append(
                [name, rank, f"{matrix.nnz:,}", f"{ours:.4f}", variant, f"{theirs:.4f}"]
                + [ratio(ours, theirs)]
            )
    print_table(
        f"cost floor: one ALS sweep (users + items), our explicit solver ({als.CG_STEPS} "
        "preconditioned CG steps per row) vs implicit's (goal: ours ≤ 2× implicit's CG)",
        ["matrix", "rank", "nnz", "ours s", "implicit", "implicit s", "ours ÷ implicit"],
        rows,
    )


def cost_floor_matrices(
    synthetic: csr_matrix, lastfm: tuple[csr_matrix, ...] | None
) -> dict[str, tuple[csr_matrix, int]]:
    """Section 4's cases: the synthetic 100k ratings at rank 10, Last.fm-2k's pattern at 64."""
    matrices = {"synthetic 1,000 × 2,000": (synthetic, 10)}
    if lastfm is not None:
        matrices["Last.fm-2k pattern"] = (lastfm[0], 64)
    return matrices


def spark_vs_local(cases: dict[str, tuple[csr_matrix, TrainingParams, TrainingParams]]) -> None:
    """Each case: (matrix, our params, Spark's params); one warm-up Spark fit first."""
    import tempfile
    from pathlib import Path

    from musicrec_assets.backends.spark.als import fit_spark_als, spark_session

    rows = []
    with tempfile.TemporaryDirectory() as tmp, spark_session() as spark:
        workdir = Path(tmp)
        for name, (matrix, ours, theirs) in cases.items():
            split = train_test_split(matrix, seed=42)
            local_fit = LOCAL_FITTERS[ours.objective]
            fit_spark_als(spark, split.train, theirs, workdir)  # warm the JVM
            local = best_of(3, partial(local_fit, split.train, ours))
            remote = best_of(1, partial(fit_spark_als, spark, split.train, theirs, workdir))
            feedback = "explicit" if ours.objective == "rating" else "implicit"
            metric = "rmse" if ours.objective == "rating" else "ndcg_at_10"
            score = [
                evaluate(t.result, split.train, split.test, feedback)[metric]
                for t in (local, remote)
            ]
            rows.append(
                [
                    name,
                    metric,
                    f"{local.seconds:.3f}",
                    f"{remote.seconds:.3f}",
                    ratio(remote.seconds, local.seconds),
                    f"{score[0]:.4f}",
                    f"{score[1]:.4f}",
                ]
            )
    print_table(
        "local vs Spark MLlib local[*], equal settings (target: local ≥ 10× faster, same quality)",
        ["data", "metric", "local s", "Spark s", "Spark ÷ local", "local score", "Spark score"],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    repeat_argument(parser)
    parser.add_argument("--skip-spark", action="store_true")
    parser.add_argument("--quality-only", action="store_true", help="section 1 only")
    parser.add_argument("--cost-floor-only", action="store_true", help="section 4 only")
    args = parser.parse_args()
    print_environment(f"bench_train: best of {args.repeat}")

    lastfm = load_lastfm_plays()
    if args.cost_floor_only:
        cost_floor(cost_floor_matrices(synthetic_ratings(), lastfm), args.repeat)
        return
    filmtrust = load_filmtrust_ratings()
    if filmtrust is not None:
        quality("FilmTrust", filmtrust[0], "explicit")
    if lastfm is not None:
        quality("Last.fm-2k", lastfm[0], "implicit")
    quality("bundled sample", load_sample_ratings()[0], "explicit")
    if args.quality_only:
        return

    explicit_sample(args.repeat)
    if lastfm is not None:
        implicit_lastfm(lastfm[0], args.repeat)
    synthetic = synthetic_ratings()
    speed_target(synthetic, args.repeat)
    cost_floor(cost_floor_matrices(synthetic, lastfm), args.repeat)
    if args.skip_spark:
        return
    spark_setting = replace(EXPLICIT, use_biases=False)
    cases = {
        "sample, explicit": (load_sample_ratings()[0], spark_setting, spark_setting),
        "synthetic 100k, explicit": (synthetic, spark_setting, spark_setting),
    }
    if lastfm is not None:
        plays = lastfm[0]
        ours = TrainingParams(
            "ranking", rank=64, regularization=30.0, alpha=1.0, confidence="log1p", iterations=15
        )
        cases["Last.fm-2k, implicit"] = (
            plays,
            ours,
            replace(ours, regularization=30.0 * plays.shape[0] / plays.nnz),
        )
    spark_vs_local(cases)


if __name__ == "__main__":
    main()
