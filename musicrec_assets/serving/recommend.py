"""Serving core: top-N recommendations, similar artists, fold-in of new users, explanations.

Pure numpy/scipy. Every score is a dot product of ``FactorModel.user_vectors()`` and
``FactorModel.item_vectors()`` (biases folded in for explicit models), so one batched
top-N routine serves users -> artists, artists -> users and artist -> artist.

Top-N results are fixed-width arrays: a row with fewer than ``n`` eligible candidates (the user
has seen almost every artist) is padded with index ``-1`` and score ``-inf``;
:func:`flatten_top_n` drops the padding and turns the arrays into long-format columns.

Fold-in (cold start) solves, for a listener or artist the model has not seen, the same
regularized least squares that one training half-step solves (:class:`_HalfStep`);
:func:`explain` splits the resulting score exactly into per-history-item contributions.
Everything takes and returns row indices, never ids: mapping ids (and dropping unknown ones)
is the caller's job.
"""

from __future__ import annotations

import dataclasses
import os
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, NamedTuple

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.sparse import csr_matrix
from threadpoolctl import threadpool_limits

from musicrec_assets.model.confidence import ConfidenceScaler
from musicrec_assets.model.factors import FactorModel
from musicrec_assets.model.sparse import row_of_entry

# float32 cells per score block (64 MiB per worker thread): OpenBLAS's sgemm needs a few
# hundred query rows to reach full speed; at 50k items ~330 users per block measured fastest.
_BLOCK_CELLS = 1 << 24


def top_n_items(
    user_vectors: np.ndarray,
    item_vectors: np.ndarray,
    seen: csr_matrix | None = None,
    n: int = 10,
    batch_size: int | None = None,
    n_threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Highest-scoring unseen items for every user.

    Parameters
    ----------
    user_vectors : ndarray of shape (n_users, d)
        ``FactorModel.user_vectors()`` (or a subset of its rows).
    item_vectors : ndarray of shape (n_items, d)
        ``FactorModel.item_vectors()``.
    seen : csr_matrix of shape (n_users, n_items), optional
        Items to leave out per user; every stored entry counts, whatever its value.
    n : int
        Number of items per user.
    batch_size : int, optional
        Users scored per block; defaults to 16M score cells (64 MiB) per block.
    n_threads : int, optional
        Worker threads, each scoring its own blocks with a single-threaded BLAS;
        defaults to the cores this process may use.

    Returns
    -------
    item_index : ndarray of shape (n_users, n), int32
        Item rows, best first; ``-1`` where the user has fewer than ``n`` unseen items.
    scores : ndarray of shape (n_users, n), float32
        ``user_vectors[u] @ item_vectors[i]``; ``-inf`` where ``item_index`` is ``-1``.
    """
    return _batched_top_n(user_vectors, item_vectors, n, seen, batch_size, n_threads)


def top_n_users(
    item_vectors: np.ndarray,
    user_vectors: np.ndarray,
    n: int = 10,
    exclude: csr_matrix | None = None,
    batch_size: int | None = None,
    n_threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Users each item should be promoted to: the users with the highest predicted score.

    Pass the item x user interaction matrix as ``exclude`` (the transpose of the training
    matrix) to skip users who already listen to the artist; promoting an artist to its own
    listeners is useless, so that is what the assets do.

    Parameters
    ----------
    item_vectors : ndarray of shape (n_items, d)
        ``FactorModel.item_vectors()`` (or a subset of its rows).
    user_vectors : ndarray of shape (n_users, d)
        ``FactorModel.user_vectors()``.
    n : int
        Number of users per item.
    exclude : csr_matrix of shape (n_items, n_users), optional
        Users to leave out per item; every stored entry counts.
    batch_size : int, optional
        Items scored per block.
    n_threads : int, optional
        Worker threads, each scoring its own blocks with a single-threaded BLAS;
        defaults to the cores this process may use.

    Returns
    -------
    user_index : ndarray of shape (n_items, n), int32
        User rows, best first; ``-1`` padding as in :func:`top_n_items`.
    scores : ndarray of shape (n_items, n), float32
    """
    return _batched_top_n(item_vectors, user_vectors, n, exclude, batch_size, n_threads)


def similar_items(
    item_factors: np.ndarray,
    n: int = 10,
    batch_size: int | None = None,
    n_threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Most similar items by cosine similarity of their latent factors, the item itself excluded.

    Use the raw ``FactorModel.item_factors``: the bias columns of ``item_vectors()`` would make
    popular artists look similar to everything.

    Parameters
    ----------
    item_factors : ndarray of shape (n_items, rank)
    n : int
        Number of neighbours per item.
    batch_size : int, optional
        Items scored per block.
    n_threads : int, optional
        Worker threads, each scoring its own blocks with a single-threaded BLAS;
        defaults to the cores this process may use.

    Returns
    -------
    item_index : ndarray of shape (n_items, n), int32
        Neighbour rows, most similar first; ``-1`` padding when ``n >= n_items``.
    similarity : ndarray of shape (n_items, n), float32
        Cosine similarity in [-1, 1]; an all-zero factor row has similarity 0 to everything.
    """
    factors = np.asarray(item_factors, dtype=np.float32)
    norms = np.linalg.norm(factors, axis=1, keepdims=True)
    unit = np.divide(factors, norms, out=np.zeros_like(factors), where=norms > 0)
    n_items = len(unit)
    itself = csr_matrix(
        (np.ones(n_items, dtype=np.float32), np.arange(n_items), np.arange(n_items + 1)),
        shape=(n_items, n_items),
    )
    return _batched_top_n(unit, unit, n, itself, batch_size, n_threads)


def flatten_top_n(
    query_ids: np.ndarray, candidate_ids: np.ndarray, index: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Long-format rows ``(query_id, rank, candidate_id, score)`` of a top-N result.

    ``rank`` starts at 1; padding entries (index ``-1``) are dropped.
    ``query_ids`` are the ids of the rows that were queried, in the same order.
    """
    n_queries, n = index.shape
    if len(query_ids) != n_queries:
        raise ValueError(f"{len(query_ids)} query ids for {n_queries} result rows")
    valid = index >= 0
    query_row, position = np.nonzero(valid)
    return (
        np.asarray(query_ids)[query_row],
        (position + 1).astype(np.int32),
        np.asarray(candidate_ids)[index[valid]],
        scores[valid],
    )


class FoldIn(NamedTuple):
    """Factors of rows the model was not trained on (a new listener or a new artist).

    Attributes
    ----------
    factors : ndarray, float32
        (rank,) for one row, (n_rows, rank) for a batch.
    bias : ndarray or None
        The rows' biases, shaped like ``factors`` without its last axis; None for models
        without biases (every implicit model).
    """

    factors: np.ndarray
    bias: np.ndarray | None


class Explanation(NamedTuple):
    """Why a (folded-in) user gets a score for an item: ``score == baseline + contributions.sum()``.

    Attributes
    ----------
    score : float
        Predicted score of the item for the user folded in from the history.
    baseline : float
        The part no history item explains: ``μ + b_i`` for explicit models with biases, else 0.
    items : ndarray of int
        The history's item rows, largest contribution first.
    contributions : ndarray of float
        Each history item's share of ``score - baseline``, same order as ``items``.
    """

    score: float
    baseline: float
    items: np.ndarray
    contributions: np.ndarray


def fold_in_user(model: FactorModel, item_index: np.ndarray, values: np.ndarray) -> FoldIn:
    """Factors (and bias) of a new listener from their ratings or plays of known artists.

    Solves the user half-step of training for this one user, with the model's item side and
    hyperparameters, so a user who was in the training data gets (after convergence) their
    trained factors back. See :class:`_HalfStep` for the equations.

    Parameters
    ----------
    model : FactorModel
    item_index : array_like of int
        Item rows (not ids) the user interacted with, each at most once.
    values : array_like of float
        Ratings (explicit model) or play counts (implicit model; scaled into confidences with
        the model's stored scheme), one per item.

    Returns
    -------
    FoldIn
        ``factors`` (rank,), ``bias`` a float32 scalar or None.

    Raises
    ------
    ValueError
        Empty history, lengths that differ, indices out of range or repeated.
    """
    return _first_row(fold_in_users(model, _single_row(item_index, values, model.n_items)))


def fold_in_users(model: FactorModel, interactions: csr_matrix) -> FoldIn:
    """:func:`fold_in_user` for a batch: one row of ``interactions`` (new users × items) each."""
    return _half_step(model, "user").solve(interactions)


def fold_in_item(model: FactorModel, user_index: np.ndarray, values: np.ndarray) -> FoldIn:
    """Factors (and bias) of a new artist from known users' ratings or plays of it.

    The item half-step, symmetric to :func:`fold_in_user`. An implicit model trained with
    ``bm25`` confidence cannot fold in items: bm25 scales a play by the listener's total plays
    including the new artist, which the model does not store.

    Raises
    ------
    ValueError
        As :func:`fold_in_user`, and for bm25 models.
    """
    interactions = _single_row(user_index, values, model.n_users)
    return _first_row(_half_step(model, "item").solve(interactions))


def recommend_new_user(
    model: FactorModel, item_index: np.ndarray, values: np.ndarray, n: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``n`` items for a new listener, folded in from their history, history excluded.

    Returns
    -------
    item_index : ndarray of shape (n,), int32
        ``-1`` padded as in :func:`top_n_items`.
    scores : ndarray of shape (n,), float32
    """
    interactions = _single_row(item_index, values, model.n_items)
    top_index, scores = recommend_new_users(model, interactions, n)
    return top_index[0], scores[0]


def recommend_new_users(
    model: FactorModel, interactions: csr_matrix, n: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`recommend_new_user` for a batch: one row of ``interactions`` (users × items) each."""
    folded = fold_in_users(model, interactions)
    # reuse FactorModel's bias folding rather than restating it
    new_users = dataclasses.replace(
        model,
        user_ids=np.arange(len(folded.factors)),
        user_factors=folded.factors,
        user_bias=folded.bias,
    )
    return top_n_items(new_users.user_vectors(), model.item_vectors(), csr_matrix(interactions), n)


def explain(
    model: FactorModel,
    user_history_items: np.ndarray,
    user_history_values: np.ndarray,
    item: int,
) -> Explanation:
    """Which items of a user's history make ``item`` score high, and by how much.

    The user is folded in from the history (:func:`fold_in_user`), whose solution is linear in
    the right-hand side: with ``A_u`` the user's regularized Gram matrix, ``b_j`` the basis
    vector of history item ``j`` and ``w_j`` its weight (see :class:`_HalfStep`)::

        z_u = A_u⁻¹ Σ_j b_j w_j      so      b_iᵀ z_u = Σ_j (b_iᵀ A_u⁻¹ b_j) w_j

    and item ``j`` contributes ``(b_iᵀ A_u⁻¹ b_j) w_j``, an exact decomposition.

    * implicit: ``b_j = y_j``, ``w_j = c_uj`` (``p_uj = 1``), ``A_u = YᵀC_uY + λI``; this is
      ``implicit``'s ``explain`` (Hu, Koren & Volinsky 2008, section 5) and the score is
      ``y_i · x_u``.
    * explicit with biases: ``b_j = [y_j, 1]``, ``z_u = [x_u, b_u]``,
      ``w_j = r_uj − μ − b_j`` and ``A_u = Σ_j b_j b_jᵀ + λ n_u I`` (``λI`` without weighted
      regularization); ``b_iᵀ z_u = y_i · x_u + b_u`` and ``μ + b_i`` is the baseline.
      Without biases ``b_j = y_j``, ``w_j = r_uj`` and the baseline is 0.

    A negative contribution pulls the score down (for explicit: a history item rated below
    its expected rating, or one whose taste direction opposes ``item``).

    Parameters
    ----------
    model : FactorModel
    user_history_items, user_history_values : array_like
        The user's history, as for :func:`fold_in_user`.
    item : int
        Row of the item to explain.

    Returns
    -------
    Explanation
    """
    half_step = _half_step(model, "user")
    history = _single_row(user_history_items, user_history_values, model.n_items)
    weights = half_step.weights(_checked_interactions(history, model.n_items))
    cholesky, basis_rows = half_step.system(weights.indices, weights.data)
    # one solve against the explained item instead of one per history item
    influence = basis_rows @ cho_solve(cholesky, half_step.basis_rows(np.array([item]))[0])
    contributions = influence * weights.data
    order = np.argsort(-contributions, kind="stable")
    baseline = float(model.global_mean + model.item_bias[item]) if model.has_biases else 0.0
    return Explanation(
        score=baseline + float(contributions.sum()),
        baseline=baseline,
        items=weights.indices[order],
        contributions=contributions[order],
    )


def _batched_top_n(
    queries: np.ndarray,
    candidates: np.ndarray,
    n: int,
    exclude: csr_matrix | None,
    batch_size: int | None,
    n_threads: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``n`` of ``queries @ candidates.T`` per query row, skipping ``exclude``'s entries."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    candidates = np.ascontiguousarray(candidates, dtype=np.float32)
    n_queries, n_candidates = len(queries), len(candidates)
    if queries.ndim != 2 or candidates.ndim != 2 or queries.shape[1] != candidates.shape[1]:
        raise ValueError(
            f"need two 2-d arrays with the same width, got {queries.shape} and {candidates.shape}"
        )
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if exclude is not None:
        if exclude.shape != (n_queries, n_candidates):
            raise ValueError(
                f"exclude has shape {exclude.shape}, expected {(n_queries, n_candidates)}"
            )
        exclude = csr_matrix(exclude)

    selector = _TopNSelector(n_candidates, n)
    if batch_size is None:
        batch_size = max(1, _BLOCK_CELLS // selector.width)
    batch_starts = range(0, n_queries, batch_size)
    n_workers = max(1, min(n_threads or _available_cores(), len(batch_starts)))
    index = np.empty((n_queries, n), dtype=np.int32)
    scores = np.empty((n_queries, n), dtype=np.float32)

    def score_batches(worker: int) -> None:
        block = np.empty((min(batch_size, n_queries), selector.width), dtype=np.float32)
        block[:, n_candidates:] = -np.inf
        for start in batch_starts[worker::n_workers]:
            stop = min(start + batch_size, n_queries)
            rows = block[: stop - start]
            np.matmul(queries[start:stop], candidates.T, out=rows[:, :n_candidates])
            if exclude is not None:
                _mask_rows(rows, exclude, start, stop)
            index[start:stop], scores[start:stop] = selector.select(rows)

    if n_workers == 1:
        score_batches(0)
        return index, scores
    # One single-threaded BLAS per worker: numpy releases the GIL in matmul and in the
    # selection passes, so workers overlap all of it, where a threaded BLAS speeds up only
    # the matmul (and oversubscribes the cores if combined with our threads).
    with threadpool_limits(1, "blas"), ThreadPoolExecutor(n_workers) as pool:
        list(pool.map(score_batches, range(n_workers)))
    return index, scores


def _available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _mask_rows(rows: np.ndarray, exclude: csr_matrix, start: int, stop: int) -> None:
    """Set ``rows[r, c] = -inf`` for every entry of ``exclude[start:stop]``, without a row loop."""
    indptr = exclude.indptr[start : stop + 1]
    columns = exclude.indices[indptr[0] : indptr[-1]]
    rows[row_of_entry(indptr), columns] = -np.inf


class _TopNSelector:
    """Exact top ``n`` per row of a score block, much faster than a full-row argpartition.

    Each block row is viewed as ``depth x n_groups`` (group ``g`` = columns
    ``g, g + n_groups, ...``). The ``n`` groups with the largest maxima hold a set of top-``n``
    elements: an element outside them is beaten by each of their ``n`` maxima. So a strided max
    (vectorized, memory speed) plus an argpartition of ``n_groups`` maxima and one of
    ``depth * n`` gathered cells replaces an argpartition over every column, which is ~30x
    slower per cell. ``n_groups ~ sqrt(n_candidates * n)`` balances those two argpartitions.
    """

    def __init__(self, n_candidates: int, n: int):
        # blocks are ``width`` columns wide, the columns past ``n_candidates`` held at -inf
        self.n = n
        n_groups = int(np.sqrt(n_candidates * n))
        self.grouped = n_groups > 2 * n
        if self.grouped:
            self.n_groups = n_groups
            self.depth = -(-n_candidates // n_groups)
            self.width = self.depth * n_groups
            self.level_offsets = (np.arange(self.depth) * n_groups)[None, :, None]
        else:
            # few candidates per requested item: select over the whole row
            self.width = max(n_candidates, n)

    def select(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top ``n`` column indices and scores of a C-contiguous block, best first."""
        n, n_rows = self.n, len(rows)
        if self.grouped:
            group_max = rows.reshape(n_rows, self.depth, self.n_groups).max(axis=1)
            # sorted, so the gather below walks each row's memory in address order
            best_groups = np.sort(np.argpartition(group_max, -n, axis=1)[:, -n:], axis=1)
            cells = (
                (np.arange(n_rows) * self.width)[:, None, None]
                + self.level_offsets
                + best_groups[:, None, :]
            )
            # flat indexing gathers ~2.5x faster than take_along_axis on the 3-d view
            gathered = rows.reshape(-1)[cells].reshape(n_rows, -1)
            best = np.argpartition(gathered, -n, axis=1)[:, -n:]
            top_scores = np.take_along_axis(gathered, best, axis=1)
            level, slot = np.divmod(best, n)
            top_index = level * self.n_groups + np.take_along_axis(best_groups, slot, axis=1)
        elif n < self.width:
            top_index = np.argpartition(rows, -n, axis=1)[:, -n:]
            top_scores = np.take_along_axis(rows, top_index, axis=1)
        else:
            top_index = np.broadcast_to(np.arange(n), rows.shape)
            top_scores = rows
        order = np.argsort(-top_scores, axis=1, kind="stable")
        top_scores = np.take_along_axis(top_scores, order, axis=1)
        top_index = np.take_along_axis(top_index, order, axis=1).astype(np.int32)
        top_index[np.isneginf(top_scores)] = -1
        return top_index, top_scores


class _HalfStep:
    """One ALS half-step of a trained model, applied to rows it was not trained on.

    Solving for a user (an item is symmetric, with the roles of users and items swapped), a
    row with known entries ``j`` becomes the normal equations ``A z = Σ_j b_j w_j``:

    * explicit, as :mod:`musicrec_assets.model.explicit_als`: ``b_j = [y_j, 1]``,
      ``z = [x_u, b_u]``, ``w_j = r_uj − μ − b_j`` with biases (else ``b_j = y_j``,
      ``z = x_u``, ``w_j = r_uj``) and
      ``A = Σ_j b_j b_jᵀ + λ n_u I`` with weighted regularization (ALS-WR), ``λ I`` without;
    * implicit, as ``implicit``'s ``recalculate_user``: ``b_j = y_j``, ``w_j = c_uj`` the
      confidence of the model's scheme, and ``A = YᵀY + Σ_j (c_uj − 1) y_j y_jᵀ + λ I``, i.e.
      ``x_u = (YᵀC_uY + λI)⁻¹ YᵀC_u p_u``; ``λ n_u I`` for a model with weighted
      regularization (Spark's implicit ALS scales λ by the row's count too).

    Holds the model's arrays but not the model, so that :func:`_half_step` can cache it for as
    long as the model lives.
    """

    def __init__(self, model: FactorModel, solve_for: Literal["user", "item"]):
        self.params = model.params
        self.solve_for = solve_for
        self.explicit = model.params.feedback == "explicit"
        self.with_bias = self.explicit and model.has_biases
        if solve_for == "user":
            self.known, self.known_bias = model.item_factors, model.item_bias
        else:
            self.known, self.known_bias = model.user_factors, model.user_bias
        self.global_mean = model.global_mean
        if not self.explicit:
            params = model.params
            self.scaler = ConfidenceScaler.from_extras(
                params.confidence, params.alpha, model.extras
            )
            known = self.known.astype(np.float64)
            self.shared_gram = known.T @ known

    def basis_rows(self, index: np.ndarray) -> np.ndarray:
        """``b_j`` of the known rows ``index``, float64."""
        rows = self.known[index].astype(np.float64)
        if self.with_bias:
            return np.hstack([rows, np.ones((len(rows), 1))])
        return rows

    def weights(self, interactions: csr_matrix) -> csr_matrix:
        """``interactions`` with each value replaced by its weight ``w_j``, float64."""
        if self.explicit:
            weights = csr_matrix(interactions, dtype=np.float64, copy=True)
            if self.with_bias:
                weights.data -= self.global_mean + self.known_bias[weights.indices]
            return weights
        if self.scaler.scheme == "bm25" and self.solve_for == "item":
            raise ValueError(
                "cannot fold in an item under bm25 confidence: it depends on each listener's "
                "total plays, which the model does not store"
            )
        return csr_matrix(self.scaler.transform(interactions), dtype=np.float64)

    def system(self, index: np.ndarray, weights: np.ndarray) -> tuple[tuple, np.ndarray]:
        """Cholesky factor of ``A`` and the basis rows ``b_j`` of one row's entries."""
        basis_rows = self.basis_rows(index)
        if self.explicit:
            gram = basis_rows.T @ basis_rows
        else:
            gram = self.shared_gram + basis_rows.T @ (basis_rows * (weights - 1.0)[:, None])
        penalty = self.params.regularization
        if self.params.weighted_regularization:
            penalty *= len(index)
        gram[np.diag_indices_from(gram)] += penalty
        return cho_factor(gram), basis_rows

    def solve(self, interactions: csr_matrix) -> FoldIn:
        weights = self.weights(_checked_interactions(interactions, len(self.known)))
        solution = np.empty((weights.shape[0], self.known.shape[1] + self.with_bias))
        for row in range(weights.shape[0]):
            entries = slice(weights.indptr[row], weights.indptr[row + 1])
            row_weights = weights.data[entries]
            cholesky, basis_rows = self.system(weights.indices[entries], row_weights)
            solution[row] = cho_solve(cholesky, basis_rows.T @ row_weights)
        solution = solution.astype(np.float32)
        if self.with_bias:
            return FoldIn(solution[:, :-1], solution[:, -1])
        return FoldIn(solution, None)


# (id(model), side) -> (weak reference to the model, its half-step). Implicit's YᵀY is a pass
# over every factor, far slower than folding in one user, so it is computed once per model;
# an entry goes away with its model. Models are immutable, so entries never go stale.
_half_steps: dict[tuple[int, str], tuple[weakref.ref, _HalfStep]] = {}


def _half_step(model: FactorModel, solve_for: Literal["user", "item"]) -> _HalfStep:
    key = (id(model), solve_for)
    cached = _half_steps.get(key)
    if cached is None or cached[0]() is not model:

        def forget(_: weakref.ref) -> None:
            _half_steps.pop(key, None)

        cached = (weakref.ref(model, forget), _HalfStep(model, solve_for))
        _half_steps[key] = cached
    return cached[1]


def _single_row(index: np.ndarray, values: np.ndarray, n_columns: int) -> csr_matrix:
    """One interaction row as a 1 × n_columns CSR matrix, entries kept in the given order."""
    index, values = np.asarray(index), np.asarray(values, dtype=np.float64)
    if index.ndim != 1 or values.ndim != 1 or len(index) != len(values):
        raise ValueError(
            f"need one value per index, got {index.shape} indices and {values.shape} values"
        )
    if len(index) == 0:
        raise ValueError("empty history: fold-in needs at least one interaction")
    if not np.issubdtype(index.dtype, np.integer):
        raise ValueError(f"indices must be integer row numbers, got dtype {index.dtype}")
    if index.min() < 0 or index.max() >= n_columns:
        raise ValueError(f"indices must lie in [0, {n_columns}); map unknown ids out first")
    return csr_matrix((values, index, [0, len(index)]), shape=(1, n_columns))


def _checked_interactions(interactions: csr_matrix, n_columns: int) -> csr_matrix:
    interactions = csr_matrix(interactions)
    if interactions.shape[1] != n_columns:
        raise ValueError(f"interactions have {interactions.shape[1]} columns, model {n_columns}")
    empty_rows = np.flatnonzero(np.diff(interactions.indptr) == 0)
    if len(empty_rows):
        raise ValueError(
            f"rows {empty_rows[:10].tolist()} have no interactions: fold-in needs at least one"
        )
    canonical = interactions.copy()
    canonical.sum_duplicates()
    if canonical.nnz != interactions.nnz:
        raise ValueError("an index appears twice in a row: sum or deduplicate the input first")
    if not np.isfinite(interactions.data).all():
        raise ValueError("interaction values must be finite")
    return interactions


def _first_row(folded: FoldIn) -> FoldIn:
    return FoldIn(folded.factors[0], None if folded.bias is None else folded.bias[0])
