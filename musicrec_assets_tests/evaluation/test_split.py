import numpy as np
import pytest
from scipy.sparse import csr_matrix

from musicrec_assets.evaluation.split import (
    from_triples,
    kfold_splits,
    to_triples,
    train_test_split,
)


def random_interactions(n_users=300, n_items=2000, seed=0) -> csr_matrix:
    """Users with 1 to 60 interactions over popularity-skewed items."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 61, size=n_users)
    popularity = 1.0 / np.arange(1, n_items + 1)
    rows, cols = [], []
    for user, count in enumerate(counts):
        rows.append(np.full(count, user))
        cols.append(rng.choice(n_items, size=count, replace=False, p=popularity / popularity.sum()))
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    return from_triples(
        rows, cols, rng.integers(1, 100, size=len(rows)).astype(float), (n_users, n_items)
    )


def entries(matrix: csr_matrix) -> set[tuple[int, int]]:
    rows, cols, _ = to_triples(matrix)
    return set(zip(rows.tolist(), cols.tolist(), strict=True))


def test_triples_round_trip():
    matrix = random_interactions()
    rows, cols, values = to_triples(matrix)
    back = from_triples(rows, cols, values, matrix.shape)
    assert (back != matrix).nnz == 0


def test_split_is_deterministic_and_seed_dependent():
    matrix = random_interactions()
    first, second = train_test_split(matrix, seed=7), train_test_split(matrix, seed=7)
    assert (first.train != second.train).nnz == 0
    assert (first.test != second.test).nnz == 0
    assert first.dropped == second.dropped
    assert entries(train_test_split(matrix, seed=8).test) != entries(first.test)


def test_split_holds_out_a_fifth_of_each_eligible_user():
    matrix = random_interactions()
    split = train_test_split(matrix, test_share=0.2, min_interactions=5, seed=42)
    counts = np.diff(matrix.indptr)
    test_counts = np.diff(split.test.indptr)
    train_counts = np.diff(split.train.indptr)

    assert np.all(test_counts[counts < 5] == 0)
    assert np.all(train_counts[counts < 5] == counts[counts < 5])
    # held out before cold items are dropped: train + test + dropped is everything
    assert split.train.nnz + split.test.nnz + split.dropped == matrix.nnz
    held_out = counts - train_counts
    eligible = counts >= 5
    assert np.all(held_out[eligible] == np.floor(0.2 * counts[eligible] + 0.5))
    assert np.all(train_counts > 0)


def test_split_partitions_entries_and_keeps_values():
    matrix = random_interactions()
    split = train_test_split(matrix, seed=42)
    assert not entries(split.train) & entries(split.test)
    assert entries(split.train) | entries(split.test) <= entries(matrix)
    rows, cols, values = to_triples(split.test)
    assert np.array_equal(np.asarray(matrix[rows, cols]).ravel(), values)


def test_split_drops_test_items_unseen_in_train():
    matrix = random_interactions()
    split = train_test_split(matrix, seed=42)
    train_items = np.unique(split.train.indices)
    assert np.isin(split.test.indices, train_items).all()
    # the long tail of a skewed catalogue has items whose only user is held out
    assert split.dropped > 0


def test_held_out_item_without_other_users_is_dropped_and_counted():
    # ten users share items 0-3 and each has one item of their own; each holds out one of five
    n_users = 10
    rows = np.repeat(np.arange(n_users), 5)
    cols = np.concatenate([[0, 1, 2, 3, 4 + user] for user in range(n_users)])
    matrix = from_triples(rows, cols, np.ones(len(rows)), (n_users, 4 + n_users))
    dropped = []
    for seed in range(10):
        split = train_test_split(matrix, min_interactions=5, seed=seed)
        own_items_held_out = n_users - split.train[:, 4:].nnz
        assert split.dropped == own_items_held_out
        assert split.test.nnz == n_users - own_items_held_out
        dropped.append(split.dropped)
    assert max(dropped) > 0


def test_kfold_validates_every_eligible_entry_once():
    matrix = random_interactions()
    folds = list(kfold_splits(matrix, n_folds=3, seed=42))
    assert len(folds) == 3
    counts = np.diff(matrix.indptr)
    validated = [entries(validation) for _, validation in folds]
    for (train, validation), fold_entries in zip(folds, validated, strict=True):
        assert not entries(train) & fold_entries
        assert np.isin(validation.indices, np.unique(train.indices)).all()
        assert np.all(np.diff(validation.indptr)[counts < 5] == 0)
        # per user, a fold holds a third of the interactions, give or take one
        held_out = counts - np.diff(train.indptr)
        eligible = counts >= 5
        assert np.all(np.abs(held_out[eligible] - counts[eligible] / 3) < 1)
    assert not (validated[0] & validated[1]) and not (validated[1] & validated[2])


def test_kfold_is_deterministic():
    matrix = random_interactions()
    first = list(kfold_splits(matrix, seed=3))
    second = list(kfold_splits(matrix, seed=3))
    for (train_a, val_a), (train_b, val_b) in zip(first, second, strict=True):
        assert (train_a != train_b).nnz == 0 and (val_a != val_b).nnz == 0


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_split_rejects_degenerate_share(share):
    with pytest.raises(ValueError):
        train_test_split(random_interactions(), test_share=share)
