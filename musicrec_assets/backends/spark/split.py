"""Per-user hold-out and k-fold splits of Spark interaction frames, the rules of
:mod:`musicrec_assets.evaluation.split` without collecting anything.

Interactions are ``user_idx INT, item_idx INT, value FLOAT`` frames, one row per (user, item)
pair. Where the local splits shuffle each user's entries with numpy's seeded generator, these
order them by a seeded hash, ``xxhash64(seed, user_idx, item_idx)`` (ties, which a 64-bit hash
hardly ever has, the lower item first): reproducible on any partitioning, though not the rows
numpy picks. Everything else is the same rule: a user with at least ``min_interactions``
entries holds out round-half-up(``test_share`` · n) of them, the others keep all in train, and a
held-out entry whose item has no training entry is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame


@dataclass(frozen=True)
class SparkSplit:
    """A hold-out split of an interaction frame.

    Attributes
    ----------
    labelled : DataFrame
        The interactions with ``part``: "train", "test", or "cold" for a held-out entry dropped
        because its item has no training entry.
    """

    labelled: DataFrame

    @property
    def frame(self) -> DataFrame:
        """The interactions with ``part`` "train" or "test", cold entries dropped."""
        return self.labelled.where("part != 'cold'")


def hold_out(
    interactions: DataFrame, test_share: float = 0.2, min_interactions: int = 5, seed: int = 42
) -> SparkSplit:
    """Hold out ``test_share`` of each eligible user's interactions (the rule of
    :func:`~musicrec_assets.evaluation.split.train_test_split`, the order hashed).

    Parameters
    ----------
    interactions : DataFrame
        ``user_idx, item_idx, value`` (other columns are kept).
    test_share : float
        Share of each user's interactions held out, rounded half up to a count.
    min_interactions : int
        Users with fewer interactions keep all of them in train.
    seed : int
        Same seed and interactions ⇒ same split.
    """
    from pyspark.sql import functions as F

    if not 0.0 < test_share < 1.0:
        raise ValueError(f"test_share must be in (0, 1), got {test_share}")
    ranked = _hashed_ranks(interactions, seed)
    n_test = F.when(
        F.col("_count") >= min_interactions, F.floor(F.col("_count") * test_share + 0.5)
    ).otherwise(0)
    is_test = F.col("_rank") < n_test
    labelled = ranked.withColumn("_held_out", is_test).withColumn(
        "part",
        F.when(~F.col("_held_out"), "train")
        .when(_is_cold(F.col("_held_out"), F.col("_held_out")), "cold")
        .otherwise("test"),
    )
    return SparkSplit(labelled.select(*interactions.columns, "part"))


def fold_labels(
    train: DataFrame, n_folds: int = 3, min_interactions: int = 5, seed: int = 42
) -> DataFrame:
    """The interactions with ``fold``: each eligible user's entries, in hashed order, dealt
    round-robin into ``0 … n_folds - 1`` from a hashed per-user start fold (so the remainders do
    not all land in fold 0); -1 for users with fewer than ``min_interactions`` entries, who stay
    in every train fold."""
    from pyspark.sql import functions as F

    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds}")
    start = F.pmod(F.xxhash64(F.lit(seed), F.lit(1), F.col("user_idx")), F.lit(n_folds))
    fold = F.when(
        F.col("_count") >= min_interactions, F.pmod(F.col("_rank") + start, F.lit(n_folds))
    ).otherwise(-1)
    return _hashed_ranks(train, seed).select(*train.columns, fold.cast("int").alias("fold"))


def kfold_frames(
    train: DataFrame, n_folds: int = 3, min_interactions: int = 5, seed: int = 42
) -> list[tuple[DataFrame, DataFrame]]:
    """``n_folds`` (train, validation) frames over :func:`fold_labels`' folds, the rule of
    :func:`~musicrec_assets.evaluation.split.kfold_splits`: every eligible interaction is
    validated once, unless its item has no entry in that fold's train (dropped)."""
    from pyspark.sql import functions as F

    labelled = fold_labels(train, n_folds, min_interactions, seed)
    # an entry is cold in its own fold when all of its item's entries are in that fold
    labelled = labelled.withColumn("_cold", _is_cold(F.col("fold"), F.col("fold") >= 0))
    return [
        (
            labelled.where(F.col("fold") != fold).select(*train.columns),
            labelled.where((F.col("fold") == fold) & ~F.col("_cold")).select(*train.columns),
        )
        for fold in range(n_folds)
    ]


def _hashed_ranks(interactions: DataFrame, seed: int) -> DataFrame:
    """The interactions with ``_rank``, each entry's 0-based position in its user's hashed order,
    and ``_count``, the user's number of entries."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    by_user = Window.partitionBy("user_idx")
    order = by_user.orderBy(
        F.xxhash64(F.lit(seed), F.col("user_idx"), F.col("item_idx")), F.col("item_idx")
    )
    return interactions.withColumn("_rank", F.row_number().over(order) - 1).withColumn(
        "_count", F.count(F.lit(1)).over(by_user)
    )


def _is_cold(group: Column, held_out: Column) -> Column:
    """Whether a ``held_out`` entry's item has no entry outside the entry's own ``group`` (the
    held-out flag, or the fold): no training entry."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    item_entries = F.count(F.lit(1)).over(Window.partitionBy("item_idx"))
    group_entries = F.count(F.lit(1)).over(Window.partitionBy("item_idx", group))
    return held_out & (item_entries == group_entries)
