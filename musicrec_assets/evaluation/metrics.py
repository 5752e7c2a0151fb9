"""Rating-error and top-K ranking metrics of a factor model on held-out data.

Ranking, for every user with at least one held-out item (users without are skipped, as
``implicit.evaluation`` does), or for a seeded sample of them (:func:`ranked_users`) when
ranking everyone would cost more than it tells: score all items with ``u · v``, drop the
user's training items, take the top K, equal scores the lower item index first: the lists of
:func:`musicrec_assets.serving.topn.top_n_items`, which the recommendation tables publish. An
item is *relevant* if it is held out for the user, whatever its value: for play counts that is
"the user listened to it"; for ratings it is "the user rated it", the usual top-N protocol for
explicit data (no rating threshold). With ``hits@K`` the number of relevant items in the top K
and ``n`` the number of relevant items, averaged over users:

    precision@K = hits@K / K
    recall@K    = hits@K / n
    NDCG@K      = Σ_{rank j < K, item relevant} 1/log2(j + 2)  /  Σ_{j < min(K, n)} 1/log2(j + 2)
    MAP@K       = Σ_{rank j < K, item relevant} (hits@(j+1) / (j + 1))  /  min(K, n)

NDCG@K and MAP@K are exactly ``implicit.evaluation.ranking_metrics_at_k``'s "ndcg" and "map".
Its "precision" is neither of ours: ``Σ_u hits@K / Σ_u min(K, n)`` pooled over users;
``RankingStats`` holds what it takes to compute it.

For ratings, a second relevance asks whether the lists hold what the user *likes*: a held-out
rating is *liked* when it is at least the user's mean training rating (:func:`liked_items`);
``ndcg_liked_at_K`` is NDCG@K of the same lists against the liked items, over the users with
at least one. ``coverage_at_K`` is the share of the catalogue (every column) that appears in
at least one evaluated user's top-K list (:func:`catalogue_coverage`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix

from musicrec_assets.model.factors import FactorModel, Feedback, Objective
from musicrec_assets.model.sparse import from_triples, row_of_entry
from musicrec_assets.serving.topn import top_n_items

# the metrics a person compares models on at a glance, where a model has them (the rest are in
# MLflow and the model_metrics table)
HEADLINE_METRICS = [
    "ndcg_at_10",
    "ndcg_liked_at_10",
    "predicted_dislikes_at_10",
    "precision_at_10",
    "coverage_at_10",
    "rmse",
]


def mse(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Mean squared error."""
    return float(np.mean((np.asarray(actual) - np.asarray(predicted)) ** 2))


def rmse(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Root mean squared error."""
    return float(np.sqrt(mse(actual, predicted)))


def mae(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Mean absolute error."""
    return float(np.mean(np.abs(np.asarray(actual) - np.asarray(predicted))))


def primary_metric(objective: Objective, k: int = 10) -> tuple[str, bool]:
    """The metric that picks the best candidate of a model's ``objective`` and whether higher
    is better: RMSE for a rating model, NDCG@K for a ranking model (on play counts or on
    ratings)."""
    if objective == "rating":
        return "rmse", False
    return f"ndcg_at_{k}", True


@dataclass(frozen=True)
class RankingStats:
    """Per-user top-K results for the users with held-out items.

    Attributes
    ----------
    users : ndarray
        (m,) row indices of the evaluated users.
    hits : ndarray
        (m,) relevant items among the top K.
    n_relevant : ndarray
        (m,) held-out items of the user.
    ndcg, average_precision : ndarray
        (m,) NDCG@K and AP@K of each user.
    k : int
    """

    users: np.ndarray
    hits: np.ndarray
    n_relevant: np.ndarray
    ndcg: np.ndarray
    average_precision: np.ndarray
    k: int

    def means(self) -> dict[str, float]:
        """Metrics averaged over users: precision, recall, ndcg and map, suffixed ``_at_{k}``."""
        if len(self.users) == 0:
            return {
                f"{name}_at_{self.k}": float("nan")
                for name in ("precision", "recall", "ndcg", "map")
            }
        return {
            f"precision_at_{self.k}": float(np.mean(self.hits / self.k)),
            f"recall_at_{self.k}": float(np.mean(self.hits / self.n_relevant)),
            f"ndcg_at_{self.k}": float(np.mean(self.ndcg)),
            f"map_at_{self.k}": float(np.mean(self.average_precision)),
        }


def ranked_users(test: csr_matrix, max_users: int, seed: int) -> np.ndarray:
    """The users to rank, sorted: all with held-out items when there are at most ``max_users``
    of them (or ``max_users`` is 0), else a seeded uniform sample of ``max_users`` of them.

    Pass the same users to every model compared. Per-user NDCG@10 spreads with a standard
    deviation of about 0.3, so the mean over 10,000 users is within about ±0.006 (two
    standard errors) of the mean over all: little precision lost, for not ranking every item
    for every user, which at Last.fm-360K size takes longer than training.
    """
    users = np.flatnonzero(np.diff(csr_matrix(test).indptr) > 0)
    if max_users <= 0 or len(users) <= max_users:
        return users
    return np.sort(np.random.default_rng(seed).choice(users, size=max_users, replace=False))


def user_means(train: csr_matrix) -> np.ndarray:
    """Each user's mean training rating, what a model knows when it ranks; +inf for a user
    without training ratings (who then likes nothing)."""
    train = csr_matrix(train)
    counts = np.diff(train.indptr)
    sums = np.asarray(train.sum(axis=1), dtype=np.float64).ravel()
    return np.divide(sums, counts, out=np.full(len(counts), np.inf), where=counts > 0)


def liked_items(train: csr_matrix, test: csr_matrix) -> csr_matrix:
    """The held-out ratings at or above the user's mean training rating (:func:`user_means`),
    values kept."""
    test = csr_matrix(test)
    rows = row_of_entry(test.indptr)
    liked = test.data >= user_means(train)[rows]
    return from_triples(rows[liked], test.indices[liked], test.data[liked], test.shape)


def predicted_dislikes(
    users: np.ndarray, top_items: np.ndarray, judge: FactorModel, train: csr_matrix
) -> float:
    """Share of the entries of the lists ``top_items`` of ``users`` (-1 is padding) whose
    rating ``judge`` (a rating model) predicts below the user's mean training rating: what a
    list holds that its own rating model expects the listener to dislike."""
    rows = np.repeat(users, top_items.shape[1])
    items = top_items.ravel()
    listed = items >= 0
    if not listed.any():
        return float("nan")
    predicted = judge.predict(rows[listed], items[listed])
    return float(np.mean(predicted < user_means(train)[rows[listed]]))


def catalogue_coverage(top_items: np.ndarray, n_items: int) -> float:
    """Share of the ``n_items`` items in at least one list of ``top_items`` (-1 is padding)."""
    return float(np.unique(top_items[top_items >= 0]).size / n_items) if n_items else 0.0


def evaluate(
    model_or_vectors: FactorModel | tuple[np.ndarray, np.ndarray],
    train: csr_matrix,
    test: csr_matrix,
    feedback: Feedback,
    k: int = 10,
    ranked: np.ndarray | None = None,
    judge: FactorModel | None = None,
) -> dict[str, float]:
    """All metrics of a model on held-out data, under stable names.

    Parameters
    ----------
    model_or_vectors : FactorModel or (user_vectors, item_vectors)
        A model (scored through ``user_vectors()``/``item_vectors()``, biases included) or the
        two vector arrays whose dot products are the predictions (taken to predict ratings).
    train, test : csr_matrix
        users × items training and held-out data (ratings or plays).
    feedback : "explicit" or "implicit"
        What ``train`` and ``test`` hold. Ratings add the liked-relevance NDCG and, for a
        model that predicts ratings (``params.objective == "rating"``), the rating errors
        of the held-out ratings; a ranking model's scores are no ratings.
    k : int
        Length of the ranked list.
    ranked : ndarray, optional
        The users the ranking metrics average over (see :func:`ranked_users`); default all
        with held-out items. Rating errors always cover every held-out rating.
    judge : FactorModel, optional
        A rating model (ratings only) that judges the lists: adds
        "predicted_dislikes_at_{k}" (:func:`predicted_dislikes`).

    Returns
    -------
    dict
        "rmse", "mse", "mae" (ratings and a rating model only), "precision_at_{k}",
        "recall_at_{k}", "ndcg_at_{k}", "map_at_{k}", "ndcg_liked_at_{k}" (ratings only),
        "coverage_at_{k}", "predicted_dislikes_at_{k}" (with a judge).
    """
    if isinstance(model_or_vectors, FactorModel):
        user_vectors = model_or_vectors.user_vectors()
        item_vectors = model_or_vectors.item_vectors()
        predicts_ratings = model_or_vectors.params.objective == "rating"
    else:
        user_vectors, item_vectors = model_or_vectors
        predicts_ratings = True
    test = csr_matrix(test)
    metrics: dict[str, float] = {}
    if feedback == "explicit" and predicts_ratings:
        rows = row_of_entry(test.indptr)
        predicted = np.einsum(
            "ij,ij->i",
            user_vectors[rows].astype(np.float64),
            item_vectors[test.indices].astype(np.float64),
        )
        metrics.update(
            rmse=rmse(test.data, predicted),
            mse=mse(test.data, predicted),
            mae=mae(test.data, predicted),
        )
    users, top_items = ranked_lists(user_vectors, item_vectors, train, test, k, ranked)
    metrics.update(stats_of_lists(users, top_items, test, k).means())
    if feedback == "explicit":
        liked = stats_of_lists(users, top_items, liked_items(train, test), k)
        metrics[f"ndcg_liked_at_{k}"] = liked.means()[f"ndcg_at_{k}"]
    metrics[f"coverage_at_{k}"] = catalogue_coverage(top_items, item_vectors.shape[0])
    if judge is not None and feedback == "explicit":
        metrics[f"predicted_dislikes_at_{k}"] = predicted_dislikes(users, top_items, judge, train)
    return metrics


def ranked_lists(
    user_vectors: np.ndarray,
    item_vectors: np.ndarray,
    train: csr_matrix,
    test: csr_matrix,
    k: int,
    users: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The users (of ``users``, default all) with held-out items and their top-K lists of
    unseen items, the lists the recommendation tables publish; :func:`stats_of_lists` scores
    them."""
    train, test = csr_matrix(train), csr_matrix(test)
    n_items = item_vectors.shape[0]
    if train.shape != test.shape or test.shape != (user_vectors.shape[0], n_items):
        raise ValueError("train, test and vectors disagree on the number of users or items")
    candidates = np.arange(test.shape[0]) if users is None else np.asarray(users)
    users = candidates[np.diff(test.indptr)[candidates] > 0]
    # ranks beyond the number of items can never hold a hit
    top = min(k, n_items)
    top_items, _ = top_n_items(user_vectors[users], item_vectors, seen=train[users], n=top)
    return users, top_items


def stats_of_lists(
    users: np.ndarray, top_items: np.ndarray, relevant: csr_matrix, k: int
) -> RankingStats:
    """Metrics of the lists ``top_items`` of ``users`` (rows of ``relevant``) against
    ``relevant``'s entries, over the users with at least one relevant item; the Spark backend
    scores its blocks of users with it too."""
    relevant = csr_matrix(relevant)
    n_relevant = np.diff(relevant.indptr)[users]
    has_relevant = n_relevant > 0
    users, top_items, n_relevant = (
        users[has_relevant],
        top_items[has_relevant],
        n_relevant[has_relevant],
    )
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal_dcg = np.cumsum(discounts)[np.minimum(n_relevant, k) - 1]
    top = top_items.shape[1]
    is_hit = _is_stored(relevant[users], top_items)
    hits_so_far = np.cumsum(is_hit, axis=1)
    dcg = is_hit @ discounts[:top]
    precision_sum = np.sum(is_hit * hits_so_far / np.arange(1, top + 1), axis=1)

    return RankingStats(
        users=users,
        hits=hits_so_far[:, -1],
        n_relevant=n_relevant,
        ndcg=dcg / ideal_dcg,
        average_precision=precision_sum / np.minimum(n_relevant, k),
        k=k,
    )


def _is_stored(matrix: csr_matrix, columns: np.ndarray) -> np.ndarray:
    """Whether ``matrix[r, columns[r, j]]`` is a stored entry, whatever its value; a column of
    -1 (top-N padding) never is."""
    n_columns = matrix.shape[1]
    stored = np.sort(row_of_entry(matrix.indptr) * n_columns + matrix.indices)
    wanted = np.arange(len(columns))[:, None] * n_columns + columns
    found = np.searchsorted(stored, wanted)
    is_stored = stored[np.minimum(found, len(stored) - 1)] == wanted
    return is_stored & (columns >= 0)
