"""Fold-in (cold start): listeners and artists the model was not trained on, their top-N, and
explanations.

Pure numpy/scipy. For a new row, solves the same regularized least squares that one training
half-step solves (:class:`_HalfStep`); :func:`explain` splits the resulting score exactly into
per-history-item contributions. Everything takes and returns row indices, never ids: mapping
ids (and dropping unknown ones) is the caller's job.
"""

from __future__ import annotations

import dataclasses
import weakref
from typing import Literal, NamedTuple

import numpy as np
from scipy.linalg import lapack
from scipy.sparse import csr_matrix

from musicrec_assets.model.confidence import PER_LISTENER_SCHEMES, ConfidenceScaler
from musicrec_assets.model.explicit_als import diagonal_penalty
from musicrec_assets.model.factors import FactorModel, ModelPair, blended_vectors
from musicrec_assets.serving.topn import top_n_items, top_n_users


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
    index, values = _checked_row(item_index, values, model.n_items)
    return _first_row(_half_step(model, "user").solve_one(index, values))


def fold_in_users(model: FactorModel, interactions: csr_matrix) -> FoldIn:
    """:func:`fold_in_user` for a batch: one row of ``interactions`` (new users × items) each."""
    return _half_step(model, "user").solve(interactions)


def fold_in_item(model: FactorModel, user_index: np.ndarray, values: np.ndarray) -> FoldIn:
    """Factors (and bias) of a new artist from known users' ratings or plays of it.

    The item half-step, symmetric to :func:`fold_in_user`. An implicit model trained with
    ``bm25`` or ``centred`` confidence cannot fold in items: bm25 scales a play by the
    listener's total plays including the new artist, centred a rating by the listener's mean
    rating, neither of which the model stores.

    Raises
    ------
    ValueError
        As :func:`fold_in_user`, and for bm25 and centred models.
    """
    index, values = _checked_row(user_index, values, model.n_users)
    return _first_row(_half_step(model, "item").solve_one(index, values))


def folds_in_items(model: FactorModel) -> bool:
    """Whether :func:`fold_in_item` can place an artist in ``model`` (not under bm25 or
    centred confidence, which need each listener's totals)."""
    return model.params.objective == "rating" or model.params.confidence not in PER_LISTENER_SCHEMES


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
    index, values = _checked_row(item_index, values, model.n_items)
    users = _user_vectors(model, _half_step(model, "user").solve_one(index, values))
    seen = _row_matrix(index, values, model.n_items)
    top_index, scores = top_n_items(users, model.item_vectors(), seen, n)
    return top_index[0], scores[0]


def recommend_new_users(
    model: FactorModel, interactions: csr_matrix, n: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`recommend_new_user` for a batch: one row of ``interactions`` (users × items) each."""
    users = new_user_vectors(model, interactions)
    return top_n_items(users, model.item_vectors(), csr_matrix(interactions), n)


def new_user_vectors(model: FactorModel, interactions: csr_matrix) -> np.ndarray:
    """``user_vectors()`` of new listeners folded in (:func:`fold_in_users`), one per row of
    ``interactions``: their dot product with ``model.item_vectors()`` is their scores."""
    return _user_vectors(model, fold_in_users(model, interactions))


def _user_vectors(model: FactorModel, folded: FoldIn) -> np.ndarray:
    """``user_vectors()`` of a batch of folded-in users."""
    # reuse FactorModel's bias folding rather than restating it
    new_users = dataclasses.replace(
        model,
        user_ids=np.arange(len(folded.factors)),
        user_factors=folded.factors,
        user_bias=folded.bias,
    )
    return new_users.user_vectors()


def recommend_new_listener(
    models: ModelPair, item_index: np.ndarray, values: np.ndarray, n: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`recommend_new_user` of the lists a version publishes (``ModelPair.list_model``):
    the listener folded into the ranking model and, where the lists blend in the predicted
    rating, into the rating model too."""
    interactions = _single_row(item_index, values, models.ranking.n_items)
    lists = recommend_new_listeners(models, interactions, n)
    return lists.items[0], lists.scores[0]


class ListenerLists(NamedTuple):
    """Top-N lists of listeners folded in (:func:`recommend_new_listeners`), one row each.

    Attributes
    ----------
    items : ndarray of shape (n_listeners, n), int32
        Item rows, ``-1`` padded as in :func:`top_n_items`.
    scores : ndarray of shape (n_listeners, n), float32
        The list model's scores (``ModelPair.list_model``).
    predicted_ratings : ndarray of shape (n_listeners, n) or None
        The rating model's predictions of those items (NaN at padding); None for play counts.
    ranking_vectors : ndarray of shape (n_listeners, d)
        The listeners' ``user_vectors()`` in the ranking model, what an artist's audience
        (``artist_top_users``) ranks listeners by.
    """

    items: np.ndarray
    scores: np.ndarray
    predicted_ratings: np.ndarray | None
    ranking_vectors: np.ndarray


def recommend_new_listeners(
    models: ModelPair, interactions: csr_matrix, n: int = 10
) -> ListenerLists:
    """:func:`recommend_new_listener` for a batch: each row of ``interactions`` (listeners ×
    the models' items: ratings or plays) folded into the ranking model and, for ratings, the
    rating model, its top ``n`` by the lists' score, its own items left out. A listener the
    models were trained on gets the list of their stored history as it is now, without
    retraining (their trained vectors are not used)."""
    interactions = csr_matrix(interactions)
    ranking_users = users = new_user_vectors(models.ranking, interactions)
    items = models.ranking.item_vectors()
    rating_users = None
    if models.rating is not None:
        rating_users = new_user_vectors(models.rating, interactions)
        if models.blend_weight > 0:
            users, items = blended_vectors(
                users, items, rating_users, models.rating.item_vectors(), models.blend_weight
            )
    top_index, scores = top_n_items(users, items, interactions, n)
    if rating_users is None:
        return ListenerLists(top_index, scores, None, ranking_users)
    rated = models.rating.item_vectors()[np.maximum(top_index, 0)].astype(np.float64)
    predicted = np.einsum("ud,und->un", rating_users.astype(np.float64), rated)
    return ListenerLists(
        top_index, scores, np.where(top_index >= 0, predicted, np.nan), ranking_users
    )


def predict_new_user(
    model: FactorModel, item_index: np.ndarray, values: np.ndarray, items: np.ndarray
) -> np.ndarray:
    """The model's scores of ``items`` (rows) for a new listener folded in from their history
    (:func:`fold_in_user`): for a rating model, the ratings it predicts, biases included."""
    folded = fold_in_user(model, item_index, values)
    items = np.asarray(items)
    scores = model.item_factors[items].astype(np.float64) @ folded.factors.astype(np.float64)
    if model.has_biases:
        scores += model.global_mean + float(folded.bias) + model.item_bias[items]
    return scores


def promote_new_item(
    model: FactorModel, user_index: np.ndarray, values: np.ndarray, n: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``n`` users to promote a new artist to, the artist folded in from known users'
    ratings or plays of it (:func:`fold_in_item`), those users excluded.

    Returns
    -------
    user_index : ndarray of shape (n,), int32
        ``-1`` padded as in :func:`top_n_users`.
    scores : ndarray of shape (n,), float32
    """
    interactions = _single_row(user_index, values, model.n_users)
    audiences = promote_new_items(model, interactions, n)
    return audiences.users[0], audiences.scores[0]


class ArtistAudiences(NamedTuple):
    """Top users of artists folded in (:func:`promote_new_items`), one row each.

    Attributes
    ----------
    users : ndarray of shape (n_artists, n), int32
        User rows, ``-1`` padded as in :func:`top_n_users`.
    scores : ndarray of shape (n_artists, n), float32
    vectors : ndarray of shape (n_artists, d)
        The artists' ``item_vectors()``, folded in: what any other listener scores them by.
    """

    users: np.ndarray
    scores: np.ndarray
    vectors: np.ndarray


def promote_new_items(model: FactorModel, interactions: csr_matrix, n: int = 10) -> ArtistAudiences:
    """:func:`promote_new_item` for a batch: each row of ``interactions`` (artists × the
    model's users) one artist, folded in from its ratings or plays (:func:`fold_in_item`'s
    rules: not under bm25 or centred confidence), its listeners left out. An artist the model
    was trained on gets the audience of its stored ratings as they are now."""
    interactions = csr_matrix(interactions)
    folded = _half_step(model, "item").solve(interactions)
    # reuse FactorModel's bias folding rather than restating it
    new_items = dataclasses.replace(
        model,
        item_ids=np.arange(len(folded.factors)),
        item_factors=folded.factors,
        item_bias=folded.bias,
    )
    vectors = new_items.item_vectors()
    users, scores = top_n_users(vectors, model.user_vectors(), n, interactions)
    return ArtistAudiences(users, scores, vectors)


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

    * implicit: ``b_j = y_j``, ``w_j = c_uj p_uj``, ``A_u = YᵀC_uY + λI``; this is
      ``implicit``'s ``explain`` (Hu, Koren & Volinsky 2008, section 5) and the score is
      ``y_i · x_u``. An item of negative feedback (``p_uj = 0``, centred confidence) shapes
      ``A_u`` but contributes 0.
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
    index, values = _checked_row(user_history_items, user_history_values, model.n_items)
    weights = half_step.weights(index, values)
    gram, basis_rows = half_step.system(index, weights)
    # A_u is symmetric, so b_iᵀ A_u⁻¹ b_j = (A_u⁻¹ b_i)ᵀ b_j: one solve against the explained
    # item instead of one per history item
    explained = half_step.basis_rows(np.array([item]))[0]
    influence = basis_rows @ _solve_positive_definite(gram, explained)
    contributions = influence * half_step.targets(weights)
    order = np.argsort(-contributions, kind="stable")
    baseline = float(model.global_mean + model.item_bias[item]) if model.has_biases else 0.0
    return Explanation(
        score=baseline + float(contributions.sum()),
        baseline=baseline,
        items=index[order],
        contributions=contributions[order],
    )


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
      regularization (Spark's implicit ALS scales λ by the row's count too). A negative
      confidence-matrix entry ``w`` (centred confidence: a rating below the user's mean) is
      negative feedback, as in ``implicit``: ``c = |w|``, ``p = 0``, so it adds
      ``(|w| − 1) y yᵀ`` to ``A`` and nothing to the right-hand side (:meth:`targets`).

    Holds the model's arrays but not the model, so that :func:`_half_step` can cache it for as
    long as the model lives.
    """

    def __init__(self, model: FactorModel, solve_for: Literal["user", "item"]):
        self.params = model.params
        self.solve_for = solve_for
        self.fits_ratings = model.params.objective == "rating"
        self.with_bias = self.fits_ratings and model.has_biases
        if solve_for == "user":
            self.known, self.known_bias = model.item_factors, model.item_bias
        else:
            self.known, self.known_bias = model.user_factors, model.user_bias
        self.global_mean = model.global_mean
        if not self.fits_ratings:
            params = model.params
            self.scaler = ConfidenceScaler.from_extras(
                params.confidence, params.alpha, model.extras
            )
            # YᵀY + λI, the part of A that no row changes, once per model (λ·n_u I instead
            # where λ is weighted: that part depends on the row's count, and system adds it)
            known = self.known.astype(np.float64)
            self.shared_gram = known.T @ known
            if not params.weighted_regularization:
                _add_to_diagonal(self.shared_gram, params.regularization)

    def basis_rows(self, index: np.ndarray) -> np.ndarray:
        """``b_j`` of the known rows ``index``, float64."""
        rows = self.known.take(index, axis=0).astype(np.float64)  # take: faster than [index]
        if self.with_bias:
            return np.hstack([rows, np.ones((len(rows), 1))])
        return rows

    def weights(self, index: np.ndarray, values: np.ndarray) -> np.ndarray:
        """The weight ``w_j`` of each entry of one row (``values[j]`` of known row
        ``index[j]``, float64), float64."""
        if self.fits_ratings:
            if self.with_bias:
                return values - (self.global_mean + self.known_bias[index])
            return values
        if self.solve_for == "item" and self.scaler.scheme in PER_LISTENER_SCHEMES:
            raise ValueError(
                f"cannot fold in an item under {self.scaler.scheme} confidence: it depends on "
                "each listener's total plays or mean rating, which the model does not store"
            )
        return self.scaler.transform_row(index, values).astype(np.float64)

    def targets(self, weights: np.ndarray) -> np.ndarray:
        """The right-hand side's weight of each entry: ``w_j`` (a rating model), ``c_uj p_uj``
        (a ranking model: the confidence of a positive entry, 0 for negative feedback)."""
        return weights if self.fits_ratings else np.maximum(weights, 0.0)

    def system(self, index: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``A`` and the basis rows ``b_j`` of one row's entries."""
        basis_rows = self.basis_rows(index)
        if self.fits_ratings:
            gram = basis_rows.T @ basis_rows
            _add_to_diagonal(gram, diagonal_penalty(self.params, np.array([len(index)]))[0])
            return gram, basis_rows
        confidence = np.abs(weights)
        gram = (basis_rows.T * (confidence - 1.0)) @ basis_rows
        gram += self.shared_gram
        if self.params.weighted_regularization:
            _add_to_diagonal(gram, self.params.regularization * len(index))
        return gram, basis_rows

    def solve(self, interactions: csr_matrix) -> FoldIn:
        """Every row of ``interactions`` (new rows × the known side), each solved alone."""
        interactions = _checked_interactions(interactions, len(self.known))
        values = interactions.data.astype(np.float64)
        solution = np.empty((interactions.shape[0], self.known.shape[1] + self.with_bias))
        for row in range(len(solution)):
            entries = slice(interactions.indptr[row], interactions.indptr[row + 1])
            solution[row] = self._solution(interactions.indices[entries], values[entries])
        return self._fold_ins(solution)

    def solve_one(self, index: np.ndarray, values: np.ndarray) -> FoldIn:
        """One row, checked by :func:`_checked_row`, as a batch of one: what :meth:`solve`
        returns for it, without a sparse matrix around a few dozen entries."""
        return self._fold_ins(self._solution(index, values)[None])

    def _solution(self, index: np.ndarray, values: np.ndarray) -> np.ndarray:
        """``z`` of one row, float64."""
        weights = self.weights(index, values)
        gram, basis_rows = self.system(index, weights)
        return _solve_positive_definite(gram, basis_rows.T @ self.targets(weights))

    def _fold_ins(self, solution: np.ndarray) -> FoldIn:
        """``FoldIn`` of a batch's solutions ``z``, one row each."""
        solution = solution.astype(np.float32)
        if self.with_bias:
            return FoldIn(solution[:, :-1], solution[:, -1])
        return FoldIn(solution, None)


def _add_to_diagonal(matrix: np.ndarray, values: np.ndarray | float) -> None:
    """``matrix += diag(values)`` in place (``values`` a scalar or one per diagonal entry)."""
    matrix.flat[:: len(matrix) + 1] += values


def _solve_positive_definite(gram: np.ndarray, right_hand_side: np.ndarray) -> np.ndarray:
    """``gram⁻¹ right_hand_side`` for a symmetric positive definite ``gram`` (overwritten), by
    Cholesky: LAPACK's ``dposv`` in one call, where scipy's ``cho_factor`` and ``cho_solve``
    check and copy their arguments for longer than a rank-64 solve takes."""
    # gram is symmetric, so its transpose is the same matrix in the Fortran order LAPACK takes
    # without a copy
    _, solution, info = lapack.dposv(gram.T, right_hand_side, lower=True, overwrite_a=True)
    if info != 0:
        raise np.linalg.LinAlgError(
            f"fold-in's normal equations are not positive definite (LAPACK info {info})"
        )
    return solution


# (id(model), side) -> (weak reference to the model, its half-step). Implicit's YᵀY + λI is a
# pass over every factor, far slower than folding in one user, so it is computed once per
# model; an entry goes away with its model. Models are immutable (factors and params alike),
# so entries never go stale.
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


# what the checks of one row and of a batch say about the same faults
_REPEATED_INDEX = "an index appears twice in a row: sum or deduplicate the input first"
_NOT_FINITE = "interaction values must be finite"


def _checked_row(
    index: np.ndarray, values: np.ndarray, n_columns: int
) -> tuple[np.ndarray, np.ndarray]:
    """One row's entries as arrays, ``values`` float64, checked as :func:`_checked_interactions`
    checks a batch's rows.

    Counts with ``np.count_nonzero`` where ``.any()``/``.all()`` would read as well: their
    Python-level wrappers cost a few microseconds each when a request finds numpy's code out
    of the CPU's caches, as much as a tenth of a rank-64 fold-in."""
    index, values = np.asarray(index), np.asarray(values, dtype=np.float64)
    if index.ndim != 1 or values.ndim != 1 or len(index) != len(values):
        raise ValueError(
            f"need one value per index, got {index.shape} indices and {values.shape} values"
        )
    if len(index) == 0:
        raise ValueError("empty history: fold-in needs at least one interaction")
    if index.dtype.kind not in "iu":  # signed or unsigned integers (issubdtype is slower)
        raise ValueError(f"indices must be integer row numbers, got dtype {index.dtype}")
    in_order = np.sort(index)
    if in_order[0] < 0 or in_order[-1] >= n_columns:
        raise ValueError(f"indices must lie in [0, {n_columns}); map unknown ids out first")
    if np.count_nonzero(in_order[1:] == in_order[:-1]):
        raise ValueError(_REPEATED_INDEX)
    if np.count_nonzero(np.isfinite(values)) < len(values):
        raise ValueError(_NOT_FINITE)
    return index, values


def _row_matrix(index: np.ndarray, values: np.ndarray, n_columns: int) -> csr_matrix:
    """One row's entries as a 1 × n_columns CSR matrix, entries kept in the given order."""
    return csr_matrix((values, index, [0, len(index)]), shape=(1, n_columns))


def _single_row(index: np.ndarray, values: np.ndarray, n_columns: int) -> csr_matrix:
    """One interaction row, checked (:func:`_checked_row`), as a 1 × n_columns CSR matrix."""
    return _row_matrix(*_checked_row(index, values, n_columns), n_columns)


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
        raise ValueError(_REPEATED_INDEX)
    if not np.isfinite(interactions.data).all():
        raise ValueError(_NOT_FINITE)
    return interactions


def _first_row(folded: FoldIn) -> FoldIn:
    return FoldIn(folded.factors[0], None if folded.bias is None else folded.bias[0])
