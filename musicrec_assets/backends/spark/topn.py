"""The serving tables' top-N math on Spark, for models stored as
:class:`~musicrec_assets.backends.spark.factors.SparkFactors`.

The rows equal those of :mod:`musicrec_assets.serving.topn` flattened by
:func:`~musicrec_assets.serving.topn.flatten_top_n` (rank from 1, padding dropped, equal scores
the lower index first), because the same numpy kernel computes them: the query rows travel in
blocks (``mapInPandas``) with their stored factors, joined in Spark from the model's Parquet,
and the list of candidates to leave out; every task reads the candidate side's vectors from the
model folder itself (shared storage), so neither the interactions nor a model side pass through
the driver. :func:`stored_factors`, :func:`block_vectors`, :func:`block_matrix` and
:func:`rank_block` are that kernel, which :mod:`musicrec_assets.backends.spark.metrics`
reuses so that the lists scored are the lists published.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix

from musicrec_assets.model.sparse import from_triples
from musicrec_assets.serving.topn import (
    flatten_top_n,
    pair_cosines,
    support_rows,
    top_n_items,
    unit_rows,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from musicrec_assets.backends.spark.factors import Side, SparkFactors


def top_n_items_frame(model: SparkFactors, users: DataFrame, seen: DataFrame, n: int) -> DataFrame:
    """Each user's ``n`` best unseen items, as :func:`~musicrec_assets.serving.topn.top_n_items`.

    Parameters
    ----------
    model : SparkFactors
        Scores are the dot products of ``model.vectors`` of both sides.
    users : DataFrame
        ``user_idx``, one row per user to rank.
    seen : DataFrame
        ``user_idx, item_idx`` pairs left out of the users' lists (e.g. the training plays).
    n : int
        Items per user.

    Returns
    -------
    DataFrame
        ``user_idx INT, rank INT, item_idx INT, score FLOAT``, rank 1 the best.
    """
    return _top_n_frame(model, "users", users, seen, n, "user_idx", "item_idx")


def top_n_users_frame(model: SparkFactors, items: DataFrame, seen: DataFrame, n: int) -> DataFrame:
    """Each item's ``n`` best users among those who have not seen it, as
    :func:`~musicrec_assets.serving.topn.top_n_users` with ``exclude`` the item's listeners.

    Parameters
    ----------
    model : SparkFactors
    items : DataFrame
        ``item_idx``, one row per item to rank users for.
    seen : DataFrame
        ``user_idx, item_idx`` pairs: the users left out of each item's list.
    n : int
        Users per item.

    Returns
    -------
    DataFrame
        ``item_idx INT, rank INT, user_idx INT, score FLOAT``, rank 1 the best.
    """
    return _top_n_frame(model, "items", items, seen, n, "item_idx", "user_idx")


def similar_items_frame(
    model: SparkFactors, n: int, support: np.ndarray | None = None
) -> DataFrame:
    """Every item's ``n`` most similar other items, as
    :func:`~musicrec_assets.serving.topn.similar_items` of the raw item factors (no bias columns),
    ordered by the cosine shrunk by ``support`` (each item's listeners, one number per item)
    where given.

    Returns
    -------
    DataFrame
        ``item_idx INT, rank INT, similar_idx INT, similarity FLOAT``, rank 1 the most similar.
    """
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    items = SparkSession.active().range(model.n_items).select(F.col("id").cast("int").alias("key"))

    def rank_partition(blocks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        # topn.similar_items' normalization, so the vectors are bit for bit the same
        factors = model.arrays("items")[0]
        unit = unit_rows(factors)
        ordering = unit if support is None else support_rows(factors, support)
        for block in blocks:
            key = block["key"].to_numpy()
            itself = csr_matrix(
                (np.ones(len(key), dtype=np.float32), key, np.arange(len(key) + 1)),
                shape=(len(key), len(unit)),
            )
            index, scores = rank_block(ordering[key], ordering, itself, n)
            if support is not None:
                scores = pair_cosines(unit, key, index)
            yield _flattened(key, index, scores, "item_idx", "similar_idx", "similarity")

    return items.mapInPandas(
        rank_partition, "item_idx int, rank int, similar_idx int, similarity float"
    )


def predict_frame(model: SparkFactors, pairs: DataFrame) -> DataFrame:
    """``pairs`` (``user_idx, item_idx`` and any other columns) with ``prediction DOUBLE`` added:
    the dot product of both sides' ``model.vectors``, in float64 over the float32 vectors as
    :func:`musicrec_assets.evaluation.metrics.evaluate` computes its rating errors; a row the
    model does not store has zero factors and bias."""
    from pyspark.sql import functions as F

    def side_columns(side: Side, key: str) -> DataFrame:
        return stored_factors(model, side, pairs).select(
            F.col("idx").alias(key),
            F.col("factors").alias(f"{key}_factors"),
            F.col("bias").alias(f"{key}_bias"),
        )

    joined = pairs.join(side_columns("users", "user_idx"), "user_idx", "left").join(
        side_columns("items", "item_idx"), "item_idx", "left"
    )
    zeros = F.array_repeat(F.lit(0.0).cast("float"), model.params.rank)
    products = F.zip_with(
        F.coalesce("user_idx_factors", zeros),
        F.coalesce("item_idx_factors", zeros),
        lambda x, y: x.cast("double") * y.cast("double"),
    )
    prediction = F.aggregate(products, F.lit(0.0).cast("double"), lambda total, x: total + x)
    if model.has_biases:
        # μ + b_u in float32, as SparkFactors.vectors folds it into the user vector
        offset = F.lit(model.global_mean).cast("float") + F.coalesce(
            "user_idx_bias", F.lit(0.0).cast("float")
        )
        prediction = (
            prediction
            + F.coalesce("item_idx_bias", F.lit(0.0).cast("float")).cast("double")
            + offset.cast("double")
        )
    return joined.select(*pairs.columns, prediction.alias("prediction"))


def stored_factors(model: SparkFactors, side: Side, like: DataFrame) -> DataFrame:
    """The side's stored ``idx, factors, bias`` rows, read by Spark in ``like``'s session."""
    return like.sparkSession.read.parquet(Path(model.folder, side).absolute().as_uri())


def _query_blocks(
    model: SparkFactors,
    side: Side,
    queries: DataFrame,
    key: str,
    exclude: DataFrame,
    candidate: str,
) -> DataFrame:
    """``queries`` with, per row, the stored ``factors`` and ``bias`` of the side's row ``key``
    (null where not stored) and ``exclude``: the array of ``exclude``'s ``candidate`` values of
    that row (null where none), what :func:`rank_block` takes."""
    from pyspark.sql import functions as F

    factors = stored_factors(model, side, queries).withColumnRenamed("idx", key)
    lists = exclude.groupBy(key).agg(F.collect_list(candidate).alias("exclude"))
    return queries.join(factors, key, "left").join(lists, key, "left")


def block_vectors(model: SparkFactors, side: Side, block: pd.DataFrame) -> np.ndarray:
    """The scoring vectors of a block's rows from their ``factors`` and ``bias`` columns, folded
    as :meth:`SparkFactors.vectors` folds them; null (not stored) reads as zero."""
    rank = model.params.rank
    factors = np.zeros((len(block), rank), dtype=np.float32)
    stored = block["factors"].notna().to_numpy()
    if rank and stored.any():
        factors[stored] = np.stack(block["factors"][stored].to_numpy())
    bias = block["bias"].fillna(0.0).to_numpy(np.float32)
    if not model.has_biases:
        return factors
    ones = np.ones((len(factors), 1), dtype=np.float32)
    if side == "users":
        return np.hstack([factors, ones, (model.global_mean + bias)[:, None]])
    return np.hstack([factors, bias[:, None], ones])


def block_matrix(columns: pd.Series, values: pd.Series | None, n_columns: int) -> csr_matrix:
    """A block's rows × ``n_columns`` matrix of per-row arrays of column indices (null: none)
    and, where given, their values (else ones), float64 and sorted as
    :func:`~musicrec_assets.model.sparse.from_triples` builds the local matrices."""
    empty = np.empty(0, dtype=np.int64)
    column_lists = [empty if c is None else np.asarray(c, dtype=np.int64) for c in columns]
    lengths = np.array([len(c) for c in column_lists], dtype=np.int64)
    cols = np.concatenate([empty, *column_lists])
    if values is None:
        data = np.ones(len(cols))
    else:
        data = np.concatenate(
            [np.empty(0), *(np.asarray(v, dtype=np.float64) for v in values if v is not None)]
        )
    rows = np.repeat(np.arange(len(column_lists)), lengths)
    return from_triples(rows, cols, data, (len(column_lists), n_columns))


def rank_block(
    queries: np.ndarray, candidates: np.ndarray, exclude: csr_matrix, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``n`` candidates of each query row, ``exclude``'s entries left out: the numpy kernel,
    one thread (a Spark task holds one core)."""
    return top_n_items(queries, candidates, seen=exclude, n=n, n_threads=1)


def _top_n_frame(
    model: SparkFactors,
    side: Side,
    queries: DataFrame,
    seen: DataFrame,
    n: int,
    key: str,
    candidate: str,
) -> DataFrame:
    blocks = _query_blocks(model, side, queries.select(key), key, seen, candidate)
    other: Side = "items" if side == "users" else "users"

    def rank_partition(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        candidates = model.vectors(other)
        for block in batches:
            exclude = block_matrix(block["exclude"], None, len(candidates))
            index, scores = rank_block(block_vectors(model, side, block), candidates, exclude, n)
            yield _flattened(block[key].to_numpy(), index, scores, key, candidate, "score")

    return blocks.mapInPandas(rank_partition, f"{key} int, rank int, {candidate} int, score float")


def _flattened(
    keys: np.ndarray,
    index: np.ndarray,
    scores: np.ndarray,
    key: str,
    candidate: str,
    score: str,
) -> pd.DataFrame:
    # the kernel's indices are the candidates' own: they are their ids
    query, rank, found, value = flatten_top_n(
        keys, np.arange(index.max(initial=-1) + 1), index, scores
    )
    return pd.DataFrame(
        {
            key: query.astype(np.int32),
            "rank": rank,
            candidate: found.astype(np.int32),
            score: value.astype(np.float32),
        }
    )
