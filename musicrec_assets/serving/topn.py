"""The batched top-N kernel: users -> artists, artists -> users and artist -> artist.

Pure numpy. Every score is a dot product of query and candidate vectors (for a model,
``FactorModel.user_vectors()`` and ``FactorModel.item_vectors()``, biases folded in for
explicit models), so one routine serves every direction, and the ranking metrics
(:mod:`musicrec_assets.evaluation.metrics`) score exactly the lists the tables publish.

Top-N results are fixed-width arrays, best first, equal scores in column order (the lower
index first, so that lists are reproducible even under a baseline's integer scores): a row with
fewer than ``n`` eligible candidates (the user has seen almost every artist) is padded with
index ``-1`` and score ``-inf``; :func:`flatten_top_n` drops the padding and turns the arrays
into long-format columns. Everything takes and returns row indices, never ids.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy.sparse import csr_matrix
from threadpoolctl import threadpool_limits

from musicrec_assets.model.cores import available_cores
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


def unit_rows(factors: np.ndarray) -> np.ndarray:
    """``factors`` (float32) scaled to unit length row by row, so a dot product is the cosine;
    an all-zero row stays zero (similarity 0 to everything)."""
    factors = np.asarray(factors, dtype=np.float32)
    norms = np.linalg.norm(factors, axis=1, keepdims=True)
    return np.divide(factors, norms, out=np.zeros_like(factors), where=norms > 0)


# β of :func:`support_rows`: a neighbour with n listeners keeps sqrt(n / (n + β)) of its
# cosine in the order of a list, 41% for one listener, 71% for 5, 95% for 50 (the artist
# itself the same, which leaves its own list's order alone)
SIMILARITY_SHRINKAGE = 5.0


def support_rows(
    factors: np.ndarray, support: np.ndarray | None, shrinkage: float = SIMILARITY_SHRINKAGE
) -> np.ndarray:
    """:func:`unit_rows` each scaled by ``sqrt(n / (n + shrinkage))``, ``n`` its ``support``
    (listeners), so that the dot product of two rows is their cosine shrunk by both supports.

    ALS gives every artist of one listener alone the same direction, that listener's: their
    cosine is 1 whatever they are. Ordering neighbours by the shrunk cosine keeps an artist's
    list from being decided by one listener. ``support`` None: plain unit rows."""
    unit = unit_rows(factors)
    if support is None or shrinkage <= 0:
        return unit
    support = np.asarray(support, dtype=np.float64)
    weight = np.sqrt(support / (support + shrinkage)).astype(np.float32)
    return unit * weight[:, None]


def similar_items(
    item_factors: np.ndarray,
    n: int = 10,
    batch_size: int | None = None,
    n_threads: int | None = None,
    support: np.ndarray | None = None,
    shrinkage: float = SIMILARITY_SHRINKAGE,
    placed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Most similar items by cosine similarity of their latent factors, the item itself
    excluded; with ``support``, ordered by the cosine shrunk by both items' support
    (:func:`support_rows`), so that artists one listener alone plays do not fill each other's
    lists.

    The last ``placed`` rows are items placed in the factor space without interactions (an
    artist by its tags): they are neighbours of the others, and their own neighbours are the
    others alone, since two of them are alike only by the mapping that placed them.

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
    support : ndarray of shape (n_items,), optional
        Each item's listeners; None: ordered by the plain cosine.
    shrinkage : float
        β of :func:`support_rows`.
    placed : int
        How many of the last rows are placed items.

    Returns
    -------
    item_index : ndarray of shape (n_items, n), int32
        Neighbour rows, first in the order; ``-1`` padding when ``n >= n_items``.
    similarity : ndarray of shape (n_items, n), float32
        Their cosine similarity in [-1, 1] (never shrunk: with ``support`` a list's cosines
        need not fall with rank); an all-zero factor row has similarity 0 to everything.
    """
    unit = unit_rows(item_factors)
    n_items = len(unit)
    known = n_items - placed
    itself = csr_matrix(
        (np.ones(known, dtype=np.float32), np.arange(known), np.arange(known + 1)),
        shape=(known, n_items),
    )
    ordered = unit if support is None else support_rows(item_factors, support, shrinkage)
    index, scores = _batched_top_n(ordered[:known], ordered, n, itself, batch_size, n_threads)
    if placed:
        placed_index, placed_scores = _batched_top_n(
            ordered[known:], ordered[:known], n, None, batch_size, n_threads
        )
        index, scores = np.vstack([index, placed_index]), np.vstack([scores, placed_scores])
    if support is None:
        return index, scores
    return index, pair_cosines(unit, np.arange(n_items), index)


def pair_cosines(unit: np.ndarray, rows: np.ndarray, index: np.ndarray) -> np.ndarray:
    """The cosine (float32) of each query row ``rows[q]`` of ``unit`` with each of its
    neighbours ``index[q]``; 0 where the neighbour is ``-1`` padding."""
    neighbours = unit[np.maximum(index, 0)]
    cosines = np.einsum("qk,qnk->qn", unit[rows], neighbours, dtype=np.float32)
    return np.where(index >= 0, cosines, np.float32(0)).astype(np.float32)


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
    n_workers = max(1, min(n_threads or available_cores(), len(batch_starts)))
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

    Ties go to the lower column. The argpartitions pick arbitrarily among equal scores, but
    the ``n``-th best score ``t`` they find is exact and every cell above ``t`` is gathered;
    only a row where some cell equal to ``t`` was left out (gathered but not picked, or in a
    group not chosen) may have picked the wrong ones, and only such rows, rare unless scores
    are integers, are chosen again over the whole row (:meth:`_lowest_columns_at`).
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
            # few candidates per requested item: sort the whole row
            self.width = max(n_candidates, n)

    def select(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top ``n`` column indices and scores of a C-contiguous block, best first, equal
        scores the lower column first."""
        if self.grouped:
            top_index = self._top_columns(rows)
            top_scores = np.take_along_axis(rows, top_index, axis=1)
            order = np.lexsort((top_index, -top_scores), axis=1)
            top_index = np.take_along_axis(top_index, order, axis=1)
            top_scores = np.take_along_axis(top_scores, order, axis=1)
        else:
            # a stable sort keeps equal scores in column order
            top_index = np.argsort(-rows, axis=1, kind="stable")[:, : self.n]
            top_scores = np.take_along_axis(rows, top_index, axis=1)
        top_index = top_index.astype(np.int32)
        top_index[np.isneginf(top_scores)] = -1
        return top_index, top_scores

    def _top_columns(self, rows: np.ndarray) -> np.ndarray:
        """The columns of each row's top ``n`` cells, in no particular order."""
        n, n_rows = self.n, len(rows)
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
        level, slot = np.divmod(best, n)
        top_index = level * self.n_groups + np.take_along_axis(best_groups, slot, axis=1)

        threshold = np.take_along_axis(gathered, best, axis=1).min(axis=1)
        groups_left_out = group_max.copy()
        np.put_along_axis(groups_left_out, best_groups, -np.inf, axis=1)
        unsure = (np.count_nonzero(gathered >= threshold[:, None], axis=1) > n) | (
            groups_left_out.max(axis=1) >= threshold
        )
        # a threshold of -inf only ever ties padding, which is dropped whatever its order
        unsure &= threshold > -np.inf
        if unsure.any():
            top_index[unsure] = self._lowest_columns_at(rows, np.where(unsure, threshold, np.inf))
        return top_index

    def _lowest_columns_at(self, rows: np.ndarray, threshold: np.ndarray) -> np.ndarray:
        """The columns above ``threshold`` (the ``n``-th best score) of each row with a finite
        one and, to make ``n``, its lowest columns equal to it, in column order; a row with
        threshold ``+inf`` is skipped (it would only cost a copy to leave it out of ``rows``)."""
        # flatnonzero and divmod: ~15x faster than a 2-d nonzero
        row, column = np.divmod(np.flatnonzero(rows >= threshold[:, None]), rows.shape[1])
        at = rows[row, column] == threshold[row]
        room = self.n - np.bincount(row[~at], minlength=len(rows))
        ties_per_row = np.bincount(row[at], minlength=len(rows))
        # rank of each cell at the threshold among its row's, in column order, from 1
        rank = np.cumsum(at) - (np.cumsum(ties_per_row) - ties_per_row)[row]
        return column[~at | (rank <= room[row])].reshape(-1, self.n)
