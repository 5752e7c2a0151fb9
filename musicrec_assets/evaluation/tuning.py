"""Hyperparameter search by k-fold cross-validation: an adaptive Optuna study (seeded TPE,
pruning, a budget, ranges that widen when the best point sits on their edge) over a
:class:`SearchSpace`, or a fixed list of candidates (a grid the settings give).

Every trial is fitted on the same per-user folds (``split.kfold_splits``) and scored on each
validation fold; trials are compared on the mean over folds of the primary metric of the model's
objective, RMSE (lower is better) for a rating model and NDCG@K (higher is better) for a ranking
model, on play counts or on ratings. A trial reports its running mean after each fold, and
Optuna's median pruner stops one that is clearly losing.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import optuna
import pandas as pd
from scipy.sparse import csr_matrix

from musicrec_assets.evaluation.metrics import evaluate, primary_metric, ranked_users
from musicrec_assets.evaluation.split import kfold_splits
from musicrec_assets.model.baselines import NeighbourParams
from musicrec_assets.model.factors import RANKING_ONLY, Feedback, Fitter, TrainingParams
from musicrec_assets.model.fitters import LOCAL_FITTERS

# The search spaces. The ranges are deliberately wide (log scales, several orders of magnitude)
# so that the search, not a default fitted to some dataset, finds each data's optimum; a best
# point on an edge widens its range (``Dimension.limits`` bound how far).
#
# The ranking model: implicit's ALS with its plain λ. α only means something relative to the
# confidence scheme's scale (binary and rating are O(1-5), log1p of plays at most ~13, raw
# counts up to ~10⁵, bm25 weights several hundred), so each scheme has its own α range.
_RANK = {"low": 8, "high": 512, "integer": True, "limits": (1, 4096)}
_RANKING_REGULARIZATION = {"low": 0.01, "high": 1000.0, "limits": (1e-5, 1e6)}
RANKING_ALPHA_BY_SCHEME = {
    "binary": (0.1, 100.0),
    "rating": (0.1, 100.0),
    "centred": (0.1, 100.0),
    "log1p": (0.01, 100.0),
    "bm25": (1e-4, 10.0),
    "raw": (1e-5, 1.0),
}
RANKING_SCHEMES = {
    "explicit": ("binary", "rating", "centred"),
    "implicit": ("log1p", "bm25", "raw"),
}
# The rating model: ALS-WR's λ (scaled by each row's count), the biases' own plain λ_b, and a
# switch for the latent factors, so the bias model (no factors) is one point of the space and
# cross-validation can never prefer a model worse than the bias baseline it is gated against.
_RATING_RANK = {"low": 2, "high": 256, "integer": True, "limits": (1, 2048)}
_RATING_REGULARIZATION = {"low": 0.005, "high": 10.0, "limits": (1e-5, 1e3)}
_BIAS_REGULARIZATION = {"low": 0.01, "high": 100.0, "limits": (1e-4, 1e5)}
# item-kNN, the baseline, is searched the same way so that the comparison is fair
_NEIGHBOURS = {"low": 5, "high": 2000, "integer": True, "limits": (1, 100_000)}
SIMILARITY_CHOICES = ("cosine", "bm25")

# a value in the outer tenth of a numeric range (of its log where the scale is log) is "on the
# edge"; the range then grows by this factor on that side
_EDGE_SHARE = 0.1
_WIDEN_FACTOR = {True: 4.0, False: 10.0}  # integer, float


@dataclass(frozen=True)
class Dimension:
    """One searched setting: a numeric range (``low``…``high``) or ``choices``.

    ``name`` is the Optuna parameter; ``field`` the params field it sets (default ``name``;
    None for a switch that only decides whether others apply). ``when`` names another
    dimension and the values under which this one is searched; otherwise ``field`` takes
    ``otherwise`` (if not None).
    """

    name: str
    low: float = 0.0
    high: float = 0.0
    integer: bool = False
    log: bool = True
    choices: tuple = ()
    limits: tuple[float, float] = (0.0, math.inf)
    field: str | None = "__name__"
    when: tuple[str, tuple] | None = None
    otherwise: Any = None

    @property
    def target(self) -> str | None:
        return self.name if self.field == "__name__" else self.field

    @property
    def numeric(self) -> bool:
        return not self.choices

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.choices:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def edge(self, value: float) -> str | None:
        """The side ("low" or "high") whose outer tenth of the range holds ``value``, if any."""
        if not self.numeric or self.high <= self.low:
            return None
        scale = math.log if self.log else float
        position = (scale(value) - scale(self.low)) / (scale(self.high) - scale(self.low))
        if position <= _EDGE_SHARE:
            return "low"
        if position >= 1 - _EDGE_SHARE:
            return "high"
        return None

    def can_widen(self, side: str) -> bool:
        return self.low > self.limits[0] if side == "low" else self.high < self.limits[1]

    def widened(self, side: str) -> Dimension:
        """The range grown on ``side`` (by a factor on a log scale, else by its width),
        within ``limits``."""
        factor = _WIDEN_FACTOR[self.integer]
        width = self.high - self.low
        if side == "low":
            low = max(self.limits[0], self.low / factor if self.log else self.low - width)
            return dataclasses.replace(self, low=int(low) if self.integer else low)
        high = min(self.limits[1], self.high * factor if self.log else self.high + width)
        return dataclasses.replace(self, high=int(high) if self.integer else high)


@dataclass(frozen=True)
class SearchSpace:
    """The dimensions of one model's search, in the order a trial suggests them."""

    dimensions: tuple[Dimension, ...]

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """The params overrides of a new trial."""
        chosen: dict[str, Any] = {}
        overrides: dict[str, Any] = {}
        for dimension in self.dimensions:
            condition = dimension.when
            if condition is not None and chosen.get(condition[0]) not in condition[1]:
                if dimension.otherwise is not None:
                    overrides[dimension.target] = dimension.otherwise
                continue
            chosen[dimension.name] = dimension.suggest(trial)
            if dimension.target is not None:
                overrides[dimension.target] = chosen[dimension.name]
        return overrides

    @property
    def is_grid(self) -> bool:
        """Whether every dimension is a fixed list of values (then the search is that grid)."""
        return all(not d.numeric and d.when is None for d in self.dimensions)

    def grid(self) -> list[dict[str, Any]]:
        """The params overrides of every point of a grid space, the last dimension fastest."""
        return grid({d.target: list(d.choices) for d in self.dimensions if d.target is not None})

    def centre(self) -> dict[str, Any]:
        """The Optuna params of the space's middle: each numeric range's (geometric) middle,
        each list's first value. The first point a fresh search tries, so that a small budget
        starts from no dataset's favourite but from the middle of every range."""
        centre: dict[str, Any] = {}
        for d in self.dimensions:
            if d.when is not None and centre.get(d.when[0]) not in d.when[1]:
                continue
            if not d.numeric:
                centre[d.name] = d.choices[0]
                continue
            middle = math.sqrt(d.low * d.high) if d.log else (d.low + d.high) / 2
            centre[d.name] = round(middle) if d.integer else middle
        return centre

    def replace(self, dimension: Dimension) -> SearchSpace:
        return SearchSpace(
            tuple(dimension if d.name == dimension.name else d for d in self.dimensions)
        )

    def within_shape(self, shape: tuple[int, int]) -> SearchSpace:
        """The space with ranks no larger than the matrix's smaller side (more factors than
        users or items only add parameters)."""
        ceiling = max(min(shape), 1)
        space = self
        for d in self.dimensions:
            if d.target == "rank" and d.numeric:
                space = space.replace(
                    dataclasses.replace(
                        d,
                        low=min(d.low, ceiling),
                        high=min(d.high, ceiling),
                        limits=(d.limits[0], min(d.limits[1], ceiling)),
                    )
                )
        return space

    def scaled(self, name: str, factor: float) -> SearchSpace:
        """The space with dimension ``name``'s range (and limits) multiplied by ``factor``,
        e.g. implicit's plain λ as Spark's row-scaled λ of about the same strength."""
        dimension = next(d for d in self.dimensions if d.name == name)
        if not dimension.numeric:
            return self
        return self.replace(
            dataclasses.replace(
                dimension,
                low=dimension.low * factor,
                high=dimension.high * factor,
                limits=(dimension.limits[0] * factor, dimension.limits[1] * factor),
            )
        )


def _numeric(name: str, ranges: dict, **more) -> Dimension:
    return Dimension(name, **{"log": True, **ranges, **more})


def _chosen_or(name: str, values: list, default: Dimension, **more) -> Dimension:
    """The settings' fixed values for ``name`` where given, else the searched ``default``."""
    if values:
        return Dimension(name, choices=tuple(values), **more)
    return default


def ranking_space(feedback: Feedback, overrides: dict[str, list]) -> SearchSpace:
    """The ranking model's space for data of ``feedback``'s kind: rank, λ, the
    confidence scheme (binary/rating/centred for ratings, log1p/bm25/raw for play counts) and
    α, searched per scheme. Each non-empty list of ``overrides`` (``rank``,
    ``regularization``, ``confidence``, ``alpha``) fixes that setting's values."""
    schemes = overrides.get("confidence") or RANKING_SCHEMES[feedback]
    dimensions = [
        _chosen_or("rank", overrides.get("rank"), _numeric("rank", _RANK)),
        _chosen_or(
            "regularization",
            overrides.get("regularization"),
            _numeric("regularization", _RANKING_REGULARIZATION),
        ),
        Dimension("confidence", choices=tuple(schemes)),
    ]
    if overrides.get("alpha"):
        dimensions.append(Dimension("alpha", choices=tuple(overrides["alpha"])))
    else:
        for scheme in schemes:
            low, high = RANKING_ALPHA_BY_SCHEME[scheme]
            dimensions.append(
                Dimension(
                    f"alpha_{scheme}",
                    low=low,
                    high=high,
                    limits=(low / 1000, high * 1000),
                    field="alpha",
                    when=("confidence", (scheme,)),
                )
            )
    return SearchSpace(tuple(dimensions))


def rating_space(overrides: dict[str, list]) -> SearchSpace:
    """The rating model's space: whether it has latent factors at all (without, it is the
    bias model), their rank and ALS-WR λ, and the biases' plain λ_b. Non-empty ``overrides``
    lists (``rank``, ``regularization``, ``bias_regularization``) fix those settings' values
    (a fixed rank keeps the factors). The iterations are a setting, not searched: ALS's
    objective falls with every one, so more only costs time."""
    if overrides.get("rank"):
        factors = [Dimension("rank", choices=tuple(overrides["rank"]))]
    else:
        factors = [
            Dimension("latent_factors", choices=(True, False), field=None),
            _numeric("rank", _RATING_RANK, when=("latent_factors", (True,)), otherwise=0),
        ]
    return SearchSpace(
        (
            *factors,
            _chosen_or(
                "regularization",
                overrides.get("regularization"),
                _numeric("regularization", _RATING_REGULARIZATION),
            ),
            _chosen_or(
                "bias_regularization",
                overrides.get("bias_regularization"),
                _numeric("bias_regularization", _BIAS_REGULARIZATION),
            ),
        )
    )


def neighbour_space(overrides: dict[str, list]) -> SearchSpace:
    """The item-kNN baseline's space: K (``neighbours``) and the similarity; non-empty
    ``overrides`` lists fix them."""
    return SearchSpace(
        (
            _chosen_or(
                "neighbours", overrides.get("neighbours"), _numeric("neighbours", _NEIGHBOURS)
            ),
            Dimension(
                "similarity", choices=tuple(overrides.get("similarity") or SIMILARITY_CHOICES)
            ),
        )
    )


@dataclass(frozen=True)
class Budget:
    """How much one model's search may spend: ``trials`` trials or ``seconds`` of fitting and
    scoring, whichever ends first (a trial under way is finished)."""

    trials: int = 30
    seconds: float = 120.0


TrialCallback = Callable[[int, "Trial"], None]

# Optuna's TPE draws this many random points before it models the search (fewer in a small
# budget, so that it still models some of it)
_STARTUP_TRIALS = 10
# a numeric best on an edge is looked at again after this many more complete trials
_WIDEN_EVERY = 5


@dataclass(frozen=True)
class Trial:
    """One candidate's cross-validation result.

    ``fold_metrics`` holds, per fold run, the metrics of ``metrics.evaluate`` plus
    "fit_seconds"; ``mean_metrics`` their means over those folds. A ``pruned`` trial stopped
    before its last fold (its means cover the folds it ran) and is never chosen.
    """

    index: int
    params: TrainingParams | NeighbourParams
    fold_metrics: list[dict[str, float]]
    mean_metrics: dict[str, float]
    pruned: bool = False


@dataclass(frozen=True)
class SearchResult:
    """A model's search: every trial in the order run and the best complete one, with what
    the search did (``widened``: the ranges it grew; ``on_edge``: numeric settings whose best
    value is still on an edge of its range when the search ended), ``seconds`` and why it
    stopped (``stopped_by``: "trials", "time" or "candidates", a fixed list run to its end)."""

    trials: list[Trial]
    best: Trial
    primary_metric: str
    higher_is_better: bool
    seconds: float = 0.0
    stopped_by: str = "candidates"
    widened: tuple[str, ...] = ()
    on_edge: tuple[str, ...] = ()
    study_name: str | None = None

    @property
    def n_pruned(self) -> int:
        return sum(trial.pruned for trial in self.trials)


@dataclass(frozen=True)
class StudyRecord:
    """Where a search keeps its Optuna study (an RDB storage URL, e.g. SQLite in
    ``MUSICREC_HOME``) and the key of its model's studies; a new search enqueues the best
    settings of the newest earlier study of the same key first (a warm start)."""

    storage: str
    key: str


def grid(params_grid: dict[str, list]) -> list[dict[str, Any]]:
    """Every combination of the listed values, the last key varying fastest.

    >>> grid({"rank": [8, 16], "alpha": [1.0]})
    [{'rank': 8, 'alpha': 1.0}, {'rank': 16, 'alpha': 1.0}]
    """
    names = list(params_grid)
    return [
        dict(zip(names, values, strict=True)) for values in itertools.product(*params_grid.values())
    ]


def cross_validate(
    matrix: csr_matrix,
    base_params: TrainingParams | NeighbourParams,
    candidates: SearchSpace | list[dict[str, Any]],
    feedback: Feedback,
    n_folds: int = 3,
    seed: int = 42,
    k: int = 10,
    on_trial: TrialCallback | None = None,
    fit: Fitter | None = None,
    max_ranked_users: int = 0,
    budget: Budget | None = None,
    record: StudyRecord | None = None,
) -> SearchResult:
    """Search by k-fold cross-validation.

    Parameters
    ----------
    matrix : csr_matrix
        users × items training data (ratings or plays); never the final test split.
    base_params : TrainingParams or NeighbourParams
        Fixed settings; ``objective`` selects the fitter and the primary metric.
    candidates : SearchSpace or list of dict
        A space to search adaptively within ``budget`` (a space whose every dimension is a
        fixed list of values is run as that grid), or overrides of ``base_params`` fields to
        try in order, each one (e.g. from ``grid``).
    feedback : "explicit" or "implicit"
        What ``matrix`` holds, ratings or play counts: ratings add the liked-relevance NDCG
        (and, for a rating model, the rating errors) to the fold metrics.
    n_folds, seed : int
        Folds of ``kfold_splits``, shared by all trials; ``seed`` seeds the sampler too, so a
        search is reproducible.
    k : int
        Ranked-list length of the ranking metrics.
    on_trial : callable, optional
        Called after each trial as ``on_trial(n_trials_so_far, trial)``, e.g. to log a nested
        MLflow run.
    fit : Fitter, optional
        Defaults to the local fitter of the objective (another backend, e.g. Spark, passes its
        own).
    max_ranked_users : int
        Ranking metrics of a fold average over at most this many of its users
        (``metrics.ranked_users``, the same for every trial); 0 ranks them all.
    budget : Budget, optional
        Of an adaptive search (default ``Budget()``).
    record : StudyRecord, optional
        Keep the study there and warm-start from the previous one; default in memory.
    """
    matrix = csr_matrix(matrix)
    if isinstance(candidates, SearchSpace):
        candidates = candidates.within_shape(matrix.shape)
    fit = fit or LOCAL_FITTERS[base_params.objective]
    return search_folds(
        cv_folds(matrix, n_folds, seed, max_ranked_users),
        base_params,
        candidates,
        fit=lambda train, params: fit(train, params),
        score=lambda model, train, validation, ranked: evaluate(
            model, train, validation, feedback, k, ranked
        ),
        k=k,
        on_trial=on_trial,
        seed=seed,
        budget=budget,
        record=record,
    )


def cv_folds(
    matrix: csr_matrix, n_folds: int, seed: int, max_ranked_users: int
) -> list[tuple[csr_matrix, csr_matrix, np.ndarray]]:
    """(train, validation, ranked users) of each fold of ``kfold_splits``: the same for every
    search of one tuning."""
    return [
        (train, validation, ranked_users(validation, max_ranked_users, seed))
        for train, validation in kfold_splits(csr_matrix(matrix), n_folds=n_folds, seed=seed)
    ]


def search_folds(
    folds: list[tuple[Any, Any, Any]],
    base_params: TrainingParams | NeighbourParams,
    candidates: SearchSpace | list[dict[str, Any]],
    fit: Callable[[Any, TrainingParams], Any],
    score: Callable[[Any, Any, Any, Any], dict[str, float]],
    k: int = 10,
    on_trial: TrialCallback | None = None,
    seed: int = 42,
    budget: Budget | None = None,
    record: StudyRecord | None = None,
) -> SearchResult:
    """The search of :func:`cross_validate` over folds of any representation (scipy
    matrices here, Spark frames in :mod:`~musicrec_assets.backends.spark.tuning`):
    ``folds`` holds (train, validation, ranked users), ``fit(train, params)`` fits a model,
    ``score(model, train, validation, ranked)`` returns its metrics."""
    if isinstance(candidates, SearchSpace) and candidates.is_grid:
        candidates = candidates.grid()
    if not candidates:
        raise ValueError("no candidates to cross-validate")
    metric, higher_is_better = primary_metric(base_params.objective, k)
    search = _Search(folds, base_params, fit, score, metric, higher_is_better, on_trial)
    if isinstance(candidates, SearchSpace):
        return search.adaptive(candidates, budget or Budget(), seed, record)
    return search.fixed(candidates)


class _Search:
    """One model's trials over shared folds, by a fixed list or by an Optuna study."""

    def __init__(self, folds, base_params, fit, score, metric, higher_is_better, on_trial):
        self.folds, self.base_params, self.fit, self.score = folds, base_params, fit, score
        self.metric, self.higher_is_better, self.on_trial = metric, higher_is_better, on_trial
        self.trials: list[Trial] = []
        self.started = time.perf_counter()

    def run(self, overrides: dict[str, Any], trial: optuna.Trial | None = None) -> Trial:
        """Fit and score ``overrides`` fold by fold; with an Optuna ``trial``, report the
        running mean after each fold and stop when the pruner says the trial is losing."""
        params = dataclasses.replace(self.base_params, **overrides)
        fold_metrics: list[dict[str, float]] = []
        pruned = False
        for step, (train, validation, ranked) in enumerate(self.folds):
            started = time.perf_counter()
            model = self.fit(train, params)
            fit_seconds = time.perf_counter() - started
            scores = self.score(model, train, validation, ranked)
            fold_metrics.append({**scores, "fit_seconds": fit_seconds})
            if trial is not None and step < len(self.folds) - 1:
                trial.report(float(np.mean([f[self.metric] for f in fold_metrics])), step)
                if trial.should_prune():
                    pruned = True
                    break
        mean_metrics = {
            name: float(np.mean([fold[name] for fold in fold_metrics])) for name in fold_metrics[0]
        }
        result = Trial(len(self.trials), params, fold_metrics, mean_metrics, pruned)
        self.trials.append(result)
        if self.on_trial is not None:
            self.on_trial(len(self.trials), result)
        return result

    def best(self) -> Trial:
        complete = [trial for trial in self.trials if not trial.pruned]
        sign = -1.0 if self.higher_is_better else 1.0
        return min(complete, key=lambda trial: sign * trial.mean_metrics[self.metric])

    def result(self, **more) -> SearchResult:
        return SearchResult(
            self.trials,
            self.best(),
            self.metric,
            self.higher_is_better,
            seconds=time.perf_counter() - self.started,
            **more,
        )

    def fixed(self, candidates: list[dict[str, Any]]) -> SearchResult:
        for overrides in candidates:
            self.run(overrides)
        return self.result()

    def adaptive(
        self, space: SearchSpace, budget: Budget, seed: int, record: StudyRecord | None
    ) -> SearchResult:
        study = _new_study(record, self.higher_is_better, seed, budget)
        study.enqueue_trial(space.centre(), skip_if_exists=True)
        widened: list[str] = []
        again: list[tuple[str, Any]] = []
        next_look = _STARTUP_TRIALS
        stopped_by = "trials"
        while len(self.trials) < budget.trials:
            if time.perf_counter() - self.started >= budget.seconds:
                stopped_by = "time"
                break
            trial = study.ask()
            result = self.run(space.suggest(trial), trial)
            if result.pruned:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            else:
                study.tell(trial, result.mean_metrics[self.metric])
            complete = sum(not t.pruned for t in self.trials)
            if complete >= next_look:
                next_look = complete + _WIDEN_EVERY
                best = study.best_trial.params
                # each new part is probed again beside the best found since: the first probe
                # carried the other settings of its time, which the search may since have
                # bettered (a larger rank wants another λ)
                probes = [{**best, name: value} for name, value in again if name in best]
                space, grown, first_probes = _widen_edges(space, best)
                widened += grown
                again = [(name, probe[name]) for probe, name in first_probes]
                for probe in [*probes, *(probe for probe, _ in first_probes)]:
                    study.enqueue_trial(probe, skip_if_exists=True)
        return self.result(
            stopped_by=stopped_by,
            widened=tuple(widened),
            on_edge=tuple(_edges(space, study.best_trial.params)),
            study_name=study.study_name,
        )


def _new_study(
    record: StudyRecord | None, higher_is_better: bool, seed: int, budget: Budget
) -> optuna.Study:
    """A seeded TPE study with a median pruner, kept in ``record``'s storage (in memory
    without), the previous study's best settings enqueued first."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        # group: the setting is called experimental, and is what makes a space with
        # conditional settings (α per confidence scheme, rank only with latent factors)
        # multivariate at all
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # multivariate: rank, λ and α trade off (a ridge, not independent optima); modelled
        # jointly, 30 trials found better ranking models on FilmTrust, Last.fm-2k and a
        # seed-sized generated world (benchmarks/README.md)
        sampler = optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=min(_STARTUP_TRIALS, max(budget.trials // 3, 1)),
            multivariate=True,
            group=True,
        )
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
    direction = "maximize" if higher_is_better else "minimize"
    if record is None:
        return optuna.create_study(sampler=sampler, pruner=pruner, direction=direction)
    previous = _previous_best(record)
    name = f"{record.key}/{datetime.now(UTC):%Y-%m-%dT%H:%M:%S.%fZ}"
    study = optuna.create_study(
        storage=record.storage,
        study_name=name,
        sampler=sampler,
        pruner=pruner,
        direction=direction,
    )
    if previous:
        study.enqueue_trial(previous, skip_if_exists=True)
    return study


def _previous_best(record: StudyRecord) -> dict[str, Any] | None:
    """The best settings (Optuna's params) of the newest earlier study of ``record.key``."""
    summaries = [
        summary
        for summary in optuna.get_all_study_summaries(record.storage, include_best_trial=True)
        if summary.study_name.startswith(f"{record.key}/") and summary.best_trial is not None
    ]
    if not summaries:
        return None
    return max(summaries, key=lambda summary: summary.study_name).best_trial.params


def _edges(space: SearchSpace, best: dict[str, Any]) -> list[str]:
    """The numeric settings of ``best`` on an edge of their range, in words."""
    return [
        f"{d.name} {best[d.name]:g} at the {d.edge(best[d.name])} edge of {d.low:g}–{d.high:g}"
        for d in space.dimensions
        if d.name in best and d.numeric and d.edge(best[d.name]) is not None
    ]


def _widen_edges(
    space: SearchSpace, best: dict[str, Any]
) -> tuple[SearchSpace, list[str], list[tuple[dict[str, Any], str]]]:
    """``space`` with each range whose best value is on its edge grown on that side (within
    its limits), what grew in words, and probes: for each grown setting, the best settings
    with that one moved into its new part of the range (the geometric middle), each with the
    setting's name. TPE models where it has been and would rarely leave the old range on its
    own."""
    grown, probes = [], []
    for dimension in space.dimensions:
        if dimension.name not in best or not dimension.numeric:
            continue
        side = dimension.edge(best[dimension.name])
        if side is None or not dimension.can_widen(side):
            continue
        wider = dimension.widened(side)
        space = space.replace(wider)
        old, new = (dimension.low, wider.low) if side == "low" else (dimension.high, wider.high)
        middle = math.sqrt(old * new) if dimension.log and old > 0 else (old + new) / 2
        probes.append(
            (
                {**best, dimension.name: round(middle) if dimension.integer else middle},
                dimension.name,
            )
        )
        grown.append(f"{dimension.name} {old:g} → {new:g} (best {best[dimension.name]:g})")
    return space, grown, probes


# the TrainingParams fields a tuning_trials row shows in columns of their own
_PARAM_COLUMNS = (
    "rank",
    "regularization",
    "bias_regularization",
    "alpha",
    "confidence",
    "iterations",
)


def trials_frame(
    searches: dict[str, SearchResult],
    feedback: Feedback,
    mlflow_run_id: str,
    tuned_at: datetime,
) -> pd.DataFrame:
    """One row per trial of every search by model name ("ranking", "rating", "item_knn"),
    numbered across them: the columns of the ``tuning_trials`` table. ``feedback`` is what the
    data holds; a column that means nothing for a model (α for a rating model, every ALS
    setting for item-kNN, whose settings are in ``params``) is empty."""
    rows = []
    for model, result in searches.items():
        for t in result.trials:
            settings = dataclasses.asdict(t.params)
            if settings.get("objective") == "rating":
                settings = {k: v for k, v in settings.items() if k not in RANKING_ONLY}
            rows.append(
                {
                    "trial": len(rows) + 1,
                    "model": model,
                    **{name: settings.get(name) for name in _PARAM_COLUMNS},
                    "feedback": feedback,
                    "metric": result.primary_metric,
                    "cv_score": t.mean_metrics[result.primary_metric],
                    "cv_metrics": json.dumps(t.mean_metrics),
                    "params": json.dumps(dataclasses.asdict(t.params)),
                    "chosen": t.index == result.best.index,
                    "pruned": t.pruned,
                    "mlflow_run_id": mlflow_run_id,
                    "tuned_at": tuned_at,
                }
            )
    # nullable types: an empty cell is NULL in the table, and rank stays an integer column
    return pd.DataFrame(rows).astype(
        {
            "rank": "Int64",
            "iterations": "Int64",
            "regularization": "Float64",
            "bias_regularization": "Float64",
            "alpha": "Float64",
        }
    )
