"""Explicit-feedback alternating least squares in numpy/scipy (``implicit`` has no explicit mode).

Objective, over the observed ratings R::

    minimize  Σ_(u,i)∈R (r_ui − μ − b_u − b_i − x_u·y_i)²
              + λ ( Σ_u w_u ‖x_u‖² + Σ_i w_i ‖y_i‖² ) + λ_b ( Σ_u b_u² + Σ_i b_i² )

with μ the mean training rating and, when ``weighted_regularization`` is set (ALS-WR, as Spark
MLlib does), w_u = n_u and w_i = n_i, the number of ratings of user u and item i; otherwise
w_u = w_i = 1. λ_b is ``bias_regularization``, plain; when it is None the biases take the
factors' λ w instead. Without ``use_biases`` μ = b_u = b_i = 0 and, with weighted
regularization, this is exactly Spark's explicit ALS.

Each half-step fixes one side and updates every row of the other side at once. For a user u,
with augmented item vectors ỹ_i = [y_i, 1], unknowns z_u = [x_u, b_u] and targets
t_ui = r_ui − μ − b_i (without biases: ỹ_i = y_i, z_u = x_u, t_ui = r_ui), the minimum over z_u
solves the normal equations::

    A_u z_u = (Σ_i∈R_u ỹ_i ỹ_iᵀ + D_u) z_u = Σ_i∈R_u t_ui ỹ_i,   D_u = diag(λ w_u, …, λ w_u, λ_b)

They are not solved exactly: each half-step takes ``cg_steps`` conjugate-gradient steps on every
row's system, started from the row's current value, as ``implicit`` does for implicit feedback
(Takács, Pilászy and Tikk 2011). A_u is never formed: A_u p_u = Σ_i∈R_u ỹ_i (ỹ_i·p_u) + D_u p_u
is one product per rating and one sparse × dense product for all rows, so a step costs
O(nnz·d) against the exact solve's O(nnz·d² + rows·d³), d = rank [+ 1]. The steps are
preconditioned by diag(A_u), because the bias's diagonal (n_u + λ_b) and the factors' (about
n_u/rank + λ w_u at the start) can differ by as much as the rank. Every CG step lowers its row's
quadratic, which is that row's share of the objective with the other side fixed, so the
objective never goes up; where the exact solve would change nothing the residuals vanish and so
do the steps, so both share their fixed points. With ``cg_steps`` ≥ d a half-step is
the exact solve up to rounding.

Items are updated symmetrically with ũ_u = [x_u, 1]. Factors start from a seeded N(0, 1/rank)
(dot products of order 1), biases from 0; each iteration updates users, then items. The steps
run in float32, the precision the model is stored in (``implicit`` does the same): the products
over the ratings are bound by memory traffic, which float64 doubles. The objective and RMSE
reported to the callback are computed in float64.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy.sparse import csr_matrix

from musicrec_assets.model.cores import available_cores
from musicrec_assets.model.factors import FactorModel, IterationCallback, TrainingParams
from musicrec_assets.model.sparse import row_of_entry

# one more than implicit's default: warm-started, held-out RMSE on FilmTrust and the sample stays
# within 0.05% of the exact solve at the settings a search keeps, where 3 strays to 0.25% with
# plain λ; each step costs one more pass over the ratings
CG_STEPS = 4
# ratings per block of the per-rating dot products (whole rows, so a row's vector is repeated
# rather than gathered): two float32 blocks of rank 64 (about 1 MiB) stay in cache, where
# doing all ratings at once writes and rereads nnz × d floats (10-15% of a rank-64 sweep)
_DOT_BLOCK = 2048


def fit_explicit_als(
    matrix: csr_matrix,
    params: TrainingParams,
    callback: IterationCallback | None = None,
    *,
    cg_steps: int = CG_STEPS,
) -> FactorModel:
    """Factorize a users × items rating matrix.

    Parameters
    ----------
    matrix : csr_matrix
        users × items, data = ratings; stored entries are the observed ratings.
    params : TrainingParams
        ``objective`` must be "rating". Uses rank, regularization (λ > 0), iterations,
        weighted_regularization, use_biases, bias_regularization and seed. ``rank`` may be 0
        with biases: a pure user + item bias model (one CG step solves its 1 × 1 systems).
    callback : callable, optional
        Called after every iteration as ``callback(iteration, metrics)`` with
        ``metrics = {"train_objective": ..., "train_rmse": ...}``, the objective above and the
        root mean squared error on the training ratings; ready for ``mlflow.log_metrics``.
    cg_steps : int
        Conjugate-gradient steps per row and half-step (≥ 1). rank + 1 or more make every
        half-step an exact solve, for checks against the normal equations.

    Returns
    -------
    FactorModel
        float32 factors and biases (biases None without ``use_biases``), by row and column
        index. Same inputs and seed give identical factors.
    """
    if params.objective != "rating":
        raise ValueError(f"fit_explicit_als fits a rating model, not a {params.objective!r} one")
    if params.regularization <= 0:
        raise ValueError("regularization must be positive: rows with few ratings are singular")
    if params.rank == 0 and not params.use_biases:
        raise ValueError("rank 0 without biases has nothing to fit")
    if cg_steps < 1:
        raise ValueError(f"cg_steps must be at least 1, got {cg_steps}")
    ratings = csr_matrix(matrix, dtype=np.float64, copy=True)
    ratings.sum_duplicates()
    ratings_by_item = ratings.T.tocsr()

    global_mean = float(ratings.data.mean()) if params.use_biases and ratings.nnz else 0.0
    rng = np.random.default_rng(params.seed)
    init_scale = 1.0 / np.sqrt(max(params.rank, 1))
    users = _initial_rows(rng, ratings.shape[0], params, init_scale)
    items = _initial_rows(rng, ratings.shape[1], params, init_scale)
    user_penalty = diagonal_penalty(params, np.diff(ratings.indptr))
    item_penalty = diagonal_penalty(params, np.diff(ratings_by_item.indptr))
    user_side = _RowSystems(ratings, user_penalty, global_mean, params.use_biases)
    item_side = _RowSystems(ratings_by_item, item_penalty, global_mean, params.use_biases)

    for iteration in range(params.iterations):
        user_side.solve(items, users, cg_steps)
        item_side.solve(users, items, cg_steps)
        if callback is not None:
            callback(
                iteration,
                _training_metrics(
                    ratings, params.rank, users, items, user_penalty, item_penalty, global_mean
                ),
            )

    rank = params.rank
    return FactorModel(
        params=params,
        user_factors=np.ascontiguousarray(users[:, :rank]),
        item_factors=np.ascontiguousarray(items[:, :rank]),
        global_mean=global_mean,
        user_bias=users[:, rank].copy() if params.use_biases else None,
        item_bias=items[:, rank].copy() if params.use_biases else None,
    )


def diagonal_penalty(params: TrainingParams, counts: np.ndarray) -> np.ndarray:
    """What each row's normal equations add to their diagonal, (n_rows, rank [+ 1]): λ·w on
    the factors and, with biases, λ_b on the bias (λ·w where ``bias_regularization`` is None).

    ``counts`` are the rows' numbers of ratings; a row without ratings gets λ so its system
    stays solvable (solution 0). Fold-in of a new row solves the same system.
    """
    counts = np.asarray(counts)
    if params.weighted_regularization:
        factor = params.regularization * np.maximum(counts, 1).astype(np.float64)
    else:
        factor = np.full(len(counts), float(params.regularization))
    penalty = np.repeat(factor[:, None], params.rank, axis=1)
    if params.use_biases:
        bias = bias_penalty(params, np.maximum(counts, 1).astype(np.float64))
        penalty = np.hstack([penalty, np.broadcast_to(bias, factor.shape)[:, None]])
    return penalty


def bias_penalty(params: TrainingParams, counts):
    """What a row's bias adds to its normal equation's diagonal: λ_b (``bias_regularization``)
    or, where that is None, the factors' λ (times the row's count where λ is weighted); the
    bias that minimizes the objective with everything else fixed is then
    ``Σ residual / (n + bias_penalty)``. ``counts`` is anything numbers multiply: a numpy
    array, or a Spark column (the Spark backend's bias sweeps)."""
    if params.bias_regularization is not None:
        return params.bias_regularization
    if params.weighted_regularization:
        return params.regularization * counts
    return params.regularization


def _initial_rows(
    rng: np.random.Generator, n_rows: int, params: TrainingParams, scale: float
) -> np.ndarray:
    """(n_rows, rank [+ 1]) float32 unknowns: seeded N(0, scale²) factors, then a zero bias."""
    rows = np.zeros((n_rows, params.rank + params.use_biases), dtype=np.float32)
    rows[:, : params.rank] = rng.normal(0.0, scale, (n_rows, params.rank))
    return rows


class _RowSystems:
    """The normal equations of every row of one side, for a half-step against the other side.

    The rows are cut into one part per core (about as many ratings each), solved in threads:
    each row's steps are its own, and numpy's and scipy's kernels release the GIL, so a
    half-step runs on every core with the same results (1.6x faster on 2 cores).
    """

    def __init__(
        self,
        ratings: csr_matrix,
        penalty: np.ndarray,
        global_mean: float,
        use_biases: bool,
        n_parts: int | None = None,
    ) -> None:
        self.global_mean = global_mean
        self.use_biases = use_biases
        n_parts = n_parts or available_cores()
        cuts = np.searchsorted(ratings.indptr, np.linspace(0, ratings.nnz, n_parts + 1)[1:-1])
        bounds = np.unique(np.concatenate([[0], cuts, [ratings.shape[0]]]))
        self.parts = [
            (slice(start, stop), _RowPart(ratings[start:stop], penalty[start:stop]))
            for start, stop in zip(bounds[:-1], bounds[1:], strict=True)
        ]

    def solve(self, other: np.ndarray, solution: np.ndarray, steps: int) -> None:
        """``steps`` Jacobi-preconditioned CG steps on every row, from and into ``solution``
        (n_rows, d), given the other side's unknowns ``other`` (its bias last)."""
        if self.use_biases:
            augmented = other.copy()
            augmented[:, -1] = 1.0
            # each rating's target, less μ and the other side's bias
            offsets = self.global_mean + other[:, -1]
        else:
            augmented, offsets = other, None
        if len(self.parts) == 1:
            rows, part = self.parts[0]
            part.solve(augmented, offsets, solution[rows], steps)
            return
        with ThreadPoolExecutor(len(self.parts)) as pool:
            solved = [
                pool.submit(part.solve, augmented, offsets, solution[rows], steps)
                for rows, part in self.parts
            ]
            for future in solved:
                future.result()


class _RowPart:
    """Consecutive rows of a :class:`_RowSystems`: the ratings' pattern, its blocks of rows
    and the diagonal penalty D, in the float32 the steps run in; what does not change between
    half-steps."""

    def __init__(self, ratings: csr_matrix, penalty: np.ndarray) -> None:
        self.ratings = ratings
        counts = np.diff(ratings.indptr)
        first_rows = np.searchsorted(
            ratings.indptr, np.arange(0, ratings.nnz, _DOT_BLOCK), side="right"
        )
        bounds = np.unique(np.concatenate([[0], first_rows - 1, [ratings.shape[0]]]))
        # (first row, end row, their counts, first rating, end rating) of every block
        self.blocks = [
            (start, stop, counts[start:stop], ratings.indptr[start], ratings.indptr[stop])
            for start, stop in zip(bounds[:-1], bounds[1:], strict=True)
        ]
        self.penalty = penalty.astype(np.float32)
        # the products' per-rating weights are written into this matrix's data in place
        self.pattern = csr_matrix(
            (np.empty(ratings.nnz, dtype=np.float32), ratings.indices, ratings.indptr),
            shape=ratings.shape,
        )

    def solve(
        self, augmented: np.ndarray, offsets: np.ndarray | None, x: np.ndarray, steps: int
    ) -> None:
        """The steps on these rows, into ``x`` (their rows of the solution, a view);
        ``augmented`` the other side's unknowns with 1 in place of the bias, ``offsets`` what
        each of its rows takes off a rating's target (None: nothing)."""
        targets = self.ratings.data
        if offsets is not None:
            targets = targets - offsets[self.ratings.indices]
        gathered = augmented[self.ratings.indices]
        pattern = self.pattern

        self._dots(gathered, x, pattern.data)
        np.subtract(targets, pattern.data, out=pattern.data)
        residual = pattern @ augmented
        residual -= self.penalty * x
        pattern.data[:] = 1.0
        inverse_diagonal = 1.0 / (pattern @ np.square(augmented) + self.penalty)

        # the loop reuses its row-sized buffers: fresh ones of a side's size cost page faults
        preconditioned = residual * inverse_diagonal
        direction = preconditioned.copy()
        scratch = np.empty_like(x)
        scale = _rowwise_dot(residual, preconditioned)
        for step in range(steps):
            self._dots(gathered, direction, pattern.data)
            product = pattern @ augmented
            product += np.multiply(self.penalty, direction, out=scratch)
            alpha = _safe_divide(scale, _rowwise_dot(direction, product))[:, None]
            x += np.multiply(direction, alpha, out=scratch)
            if step == steps - 1:
                break
            residual -= np.multiply(product, alpha, out=scratch)
            np.multiply(residual, inverse_diagonal, out=preconditioned)
            new_scale = _rowwise_dot(residual, preconditioned)
            direction *= _safe_divide(new_scale, scale)[:, None]
            direction += preconditioned
            scale = new_scale

    def _dots(self, gathered: np.ndarray, vectors: np.ndarray, out: np.ndarray) -> None:
        """``out[e] = gathered[e]·vectors[row of e]`` for every rating e."""
        for start, stop, counts, first, end in self.blocks:
            repeated = np.repeat(vectors[start:stop], counts, axis=0)
            np.einsum("ij,ij->i", gathered[first:end], repeated, out=out[first:end])


def _rowwise_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Σ_j a_ij b_ij for every row i."""
    return np.einsum("ij,ij->i", a, b)


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0: a row whose residual is exactly
    zero is solved and takes no step."""
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator != 0)


def _training_metrics(
    ratings: csr_matrix,
    rank: int,
    users: np.ndarray,
    items: np.ndarray,
    user_penalty: np.ndarray,
    item_penalty: np.ndarray,
    global_mean: float,
) -> dict[str, float]:
    """The callback's ``train_objective`` and ``train_rmse``, in float64."""
    users, items = users.astype(np.float64), items.astype(np.float64)
    squared_error = _squared_error(ratings, users, items, rank, global_mean)
    penalty = float(np.sum(user_penalty * users**2) + np.sum(item_penalty * items**2))
    return {
        "train_objective": squared_error + penalty,
        "train_rmse": float(np.sqrt(squared_error / max(ratings.nnz, 1))),
    }


def _squared_error(
    ratings: csr_matrix, users: np.ndarray, items: np.ndarray, rank: int, global_mean: float
) -> float:
    rows = row_of_entry(ratings.indptr)
    cols = ratings.indices
    predicted = np.einsum("ij,ij->i", users[rows, :rank], items[cols, :rank]) + global_mean
    if users.shape[1] > rank:
        predicted += users[rows, rank] + items[cols, rank]
    return float(np.sum((ratings.data - predicted) ** 2))
