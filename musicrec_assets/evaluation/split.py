"""Deterministic per-user hold-out splits of a users × items interaction matrix.

Every user with at least ``min_interactions`` interactions gives a share of them to the
evaluation side; everybody else keeps all of them for training, so every user is known to
the trained model. An evaluation entry whose item has no training interaction is dropped:
a factor model cannot score an item it never saw (Spark's ``coldStartStrategy="drop"``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix

from musicrec_assets.model.sparse import from_triples, to_triples


@dataclass(frozen=True)
class Split:
    """A train / held-out pair of CSR matrices with the shape of the input matrix.

    ``dropped`` counts held-out entries removed because their item has no training
    interaction.
    """

    train: csr_matrix
    test: csr_matrix
    dropped: int


def ids_digest(user_ids: Sequence[str], artist_ids: Sequence[str]) -> hashlib._Hash:
    """A SHA-256 of the id lists, which a split's fingerprint goes on from (either backend)."""
    # JSON, so that no id can contain a separator that makes two id lists read the same
    return hashlib.sha256(
        json.dumps([list(map(str, user_ids)), list(map(str, artist_ids))]).encode()
    )


def fingerprint(
    train: csr_matrix, test: csr_matrix, user_ids: Sequence[str], artist_ids: Sequence[str]
) -> str:
    """A digest of which (user, artist) pairs a split trains on and which it holds out.

    Two models scored on splits with the same fingerprint were scored on the same held-out
    pairs, which neither trained on. New data moves pairs between the parts (the shuffle
    is drawn anew), so a model trained on an earlier split has seen some of today's
    held-out pairs.
    """
    digest = ids_digest(user_ids, artist_ids)
    for part in (train, test):
        digest.update(np.asarray(part.indptr, dtype=np.int64).tobytes())
        digest.update(np.asarray(part.indices, dtype=np.int64).tobytes())
    return digest.hexdigest()


def train_test_split(
    matrix: csr_matrix, test_share: float = 0.2, min_interactions: int = 5, seed: int = 42
) -> Split:
    """Hold out ``test_share`` of each eligible user's interactions.

    Parameters
    ----------
    matrix : csr_matrix
        users × items, data = rating or play count.
    test_share : float
        Share of each user's interactions held out, rounded to the nearest count.
    min_interactions : int
        Users with fewer interactions keep all of them in train.
    seed : int
        Same seed and matrix ⇒ same split.

    Returns
    -------
    Split
    """
    if not 0.0 < test_share < 1.0:
        raise ValueError(f"test_share must be in (0, 1), got {test_share}")
    rows, cols, values = to_triples(matrix)
    order, rank, counts = _shuffled_ranks(rows, matrix.shape[0], seed)
    n_test = np.floor(test_share * counts + 0.5).astype(np.int64)
    n_test[counts < min_interactions] = 0
    is_test = np.empty(len(rows), dtype=bool)
    is_test[order] = rank < n_test[rows[order]]
    return _drop_cold_items(rows, cols, values, is_test, matrix.shape)


def kfold_splits(
    matrix: csr_matrix, n_folds: int = 3, min_interactions: int = 5, seed: int = 42
) -> Iterator[tuple[csr_matrix, csr_matrix]]:
    """Yield ``n_folds`` (train, validation) pairs over per-user folds.

    Each eligible user's interactions are shuffled and dealt round-robin into the folds, so
    every interaction is validated exactly once (unless dropped as a cold item) and fold sizes
    per user differ by at most one. Users with fewer than ``min_interactions`` interactions
    stay in every train fold.
    """
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds}")
    rows, cols, values = to_triples(matrix)
    order, rank, counts = _shuffled_ranks(rows, matrix.shape[0], seed)
    # a random starting fold per user stops the remainder of every user landing in fold 0
    start = np.random.default_rng([seed, 1]).integers(0, n_folds, size=matrix.shape[0])
    fold = np.full(len(rows), -1, dtype=np.int64)
    fold[order] = (rank + start[rows[order]]) % n_folds
    fold[counts[rows] < min_interactions] = -1
    for fold_index in range(n_folds):
        split = _drop_cold_items(rows, cols, values, fold == fold_index, matrix.shape)
        yield split.train, split.test


def _shuffled_ranks(
    rows: np.ndarray, n_rows: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A permutation grouping entries by row in random order, each entry's position within its
    row in that order, and the per-row counts."""
    keys = np.random.default_rng(seed).random(len(rows))
    order = np.lexsort((keys, rows))
    counts = np.bincount(rows, minlength=n_rows)
    row_start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(rows)) - row_start[rows[order]]
    return order, rank, counts


def _drop_cold_items(
    rows: np.ndarray,
    cols: np.ndarray,
    values: np.ndarray,
    is_test: np.ndarray,
    shape: tuple[int, int],
) -> Split:
    is_train = ~is_test
    train_item_counts = np.bincount(cols[is_train], minlength=shape[1])
    keep_test = is_test & (train_item_counts[cols] > 0)
    return Split(
        train=from_triples(rows[is_train], cols[is_train], values[is_train], shape),
        test=from_triples(rows[keep_test], cols[keep_test], values[keep_test], shape),
        dropped=int(is_test.sum() - keep_test.sum()),
    )
