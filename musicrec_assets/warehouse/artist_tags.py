"""Artists' tags from ``artist_tags`` as a sparse matrix, for the tag mapping
(:mod:`musicrec_assets.model.tag_mapping`)."""

from __future__ import annotations

from dataclasses import replace

import duckdb
import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix

from musicrec_assets.evaluation.cold_artists import tags_to_factors
from musicrec_assets.model.factors import ModelPair
from musicrec_assets.model.fitters import fit_local
from musicrec_assets.model.tag_mapping import TagFactors
from musicrec_assets.warehouse.tables import scalar, table_exists


def tag_matrix(con: duckdb.DuckDBPyConnection, artist_ids: np.ndarray) -> csr_matrix:
    """``artist_ids`` (rows, in order) × every tag any artist carries: the stored weights.
    An artist without tags, or unknown, has an empty row."""
    ids = pd.DataFrame({"artist_id": np.asarray(artist_ids).astype(str)})
    ids["row"] = np.arange(len(ids))
    con.register("tag_matrix_ids", ids)
    try:
        found = con.execute(
            """SELECT i.row, dense_rank() OVER (ORDER BY t.tag) - 1 AS col, t.weight
               FROM artist_tags t JOIN tag_matrix_ids i USING (artist_id)"""
        ).fetchnumpy()
        n_tags = scalar(con, "SELECT count(DISTINCT tag) FROM artist_tags")
    finally:
        con.unregister("tag_matrix_ids")
    return csr_matrix(
        (found["weight"], (found["row"], found["col"])), shape=(len(ids), max(int(n_tags), 1))
    )


def tag_only_artists(con: duckdb.DuckDBPyConnection, known: np.ndarray) -> np.ndarray:
    """The ids of the artists with tags that are not in ``known`` (e.g. a model's artists):
    those only tags can place."""
    tagged = con.execute("SELECT DISTINCT artist_id FROM artist_tags ORDER BY 1").fetchnumpy()
    ids = tagged["artist_id"].astype(str)
    return ids[~np.isin(ids, np.asarray(known).astype(str))]


def cold_artist_factors(
    con: duckdb.DuckDBPyConnection,
    pair: ModelPair,
    seen: csr_matrix,
    seed: int = 42,
    min_tag_artists: int = 2,
) -> tuple[np.ndarray, TagFactors] | None:
    """The champion's (``pair``, trained on ``seen``) vectors for the artists known only by
    their tags, by :func:`~musicrec_assets.evaluation.cold_artists.tags_to_factors` (tags on
    fewer than ``min_tag_artists`` artists dropped), and their ids; None where no artist has
    tags (a home without tags publishes as ever)."""
    if not table_exists(con, "artist_tags") or not scalar(con, "SELECT EXISTS (FROM artist_tags)"):
        return None
    ranking = pair.ranking
    known = np.asarray(ranking.item_ids).astype(str)
    new = tag_only_artists(con, known)
    tags = tag_matrix(con, np.concatenate([known, new]))
    interactions = csr_matrix(seen)[: ranking.n_users, : ranking.n_items]
    params = ranking.params
    if params.weighted_regularization:
        # a Spark model: its λ is scaled by each row's count; implicit's plain λ of the same
        # strength is λ · nnz / n_users (backends/spark/als.py)
        scale = interactions.nnz / max(interactions.shape[0], 1)
        params = replace(
            params, regularization=params.regularization * scale, weighted_regularization=False
        )
    result = tags_to_factors(
        pair.published_models(),
        interactions,
        tags[: len(known)],
        tags[len(known) :],
        lambda train: fit_local(train, params),
        min_tag_artists=min_tag_artists,
        seed=seed,
    )
    return new[result.rows], result
