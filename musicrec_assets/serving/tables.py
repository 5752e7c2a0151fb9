"""The rows of the published recommendation tables, computed from a :class:`Recommender`.

Top-N tables come as an iterator of long-format DataFrames, ``CHUNK_ROWS`` queries at a time,
so memory stays bounded on large catalogues; the caller writes them as they come.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy.sparse import csr_matrix, load_npz

from musicrec_assets.serving import topn
from musicrec_assets.serving.placed import PlacedArtists
from musicrec_assets.serving.recommender import Recommender

CHUNK_ROWS = 50_000  # queries per chunk: bounds memory on large catalogues
# what marks an artist nobody had rated, placed by its tags, as ``artist_factors.source`` does
TAGS = "tags"
RATINGS = "ratings"
# the listeners a placed artist counts as in the order of similar_artists (topn.support_rows):
# β, so that it keeps 71% of its cosine, as an artist of 5 listeners does. On Last.fm-2k with
# 10% of the tagged artists placed by their tags, that lists them about as often as a model
# trained on their plays does (9,918 entries of trained artists' top 10, against 14,756),
# carrying a top-5 tag of the list's artist as often as the trained neighbours (0.64, 0.66);
# counted as 20 listeners they take 53,831 entries, one artist up to 299 lists, and the lists'
# tag agreement falls from 0.640 to 0.620 (docs/tags.md)
PLACED_SUPPORT = topn.SIMILARITY_SHRINKAGE


def _with_placed(
    ids: np.ndarray, vectors: np.ndarray, placed: PlacedArtists | None
) -> tuple[np.ndarray, np.ndarray]:
    """The model's artist ``ids`` and ``vectors`` followed by the placed artists'."""
    if placed is None:
        return ids, vectors
    width = vectors.shape[1]
    return (
        np.concatenate([ids.astype(str), placed.ids.astype(str)]),
        np.vstack([vectors, placed.vectors[:, :width]]).astype(np.float32),
    )


def _top_n_chunks(
    query_ids: np.ndarray,
    candidate_ids: np.ndarray,
    top_n: Callable[[slice], tuple[np.ndarray, np.ndarray]],
    columns: tuple[str, str, str, str],
    extra: dict,
    pair_columns: Callable[[np.ndarray, np.ndarray], dict] | None = None,
) -> Iterator[pd.DataFrame]:
    """Long-format top-N rows, ``CHUNK_ROWS`` queries at a time; ``top_n(rows)`` scores a slice,
    ``pair_columns(query rows, candidate rows)`` adds columns computed per row."""
    for start in range(0, len(query_ids), CHUNK_ROWS):
        rows = slice(start, min(start + CHUNK_ROWS, len(query_ids)))
        index, scores = top_n(rows)
        flat = topn.flatten_top_n(query_ids[rows], candidate_ids, index, scores)
        frame = pd.DataFrame(dict(zip(columns, flat, strict=True)))
        if pair_columns is not None:
            # the pairs in flatten_top_n's order: query by query, rank by rank
            valid = index >= 0
            frame = frame.assign(**pair_columns(np.nonzero(valid)[0] + start, index[valid]))
        yield frame.assign(**extra)


def user_recommendations(recommender: Recommender, n: int, extra: dict) -> Iterator[pd.DataFrame]:
    """``(user_id, rank, artist_id, score, predicted_rating, *extra)``: each user's top ``n``
    unrated artists by the score of the version's lists (``ModelPair.list_model``: the ranking
    model's, for ratings blended with the predicted rating), with the rating model's prediction
    of each (NULL for play counts)."""
    model = recommender.list_model
    user_vectors, item_vectors = model.user_vectors(), model.item_vectors()

    def predicted_rating(users: np.ndarray, items: np.ndarray) -> dict:
        predicted = recommender.predicted_ratings(users, items)
        values = [pd.NA] * len(users) if predicted is None else predicted
        return {"predicted_rating": pd.array(values, dtype="Float64")}

    return _top_n_chunks(
        model.user_ids,
        model.item_ids,
        lambda rows: topn.top_n_items(
            user_vectors[rows], item_vectors, seen=recommender.seen[rows], n=n
        ),
        ("user_id", "rank", "artist_id", "score"),
        extra,
        predicted_rating,
    )


def artist_top_users(
    recommender: Recommender, n: int, extra: dict, placed: PlacedArtists | None = None
) -> Iterator[pd.DataFrame]:
    """``(artist_id, rank, user_id, score, *extra)``: the top ``n`` users to promote each
    artist to by the ranking model, its current listeners excluded; then those of the
    ``placed`` artists (nobody listens to them yet), whose rows have ``source`` 'tags' and,
    where their gate chose so, scores in units of each user's spread."""
    model = recommender.model
    item_vectors, user_vectors = model.item_vectors(), model.user_vectors()
    listeners = recommender.seen.T.tocsr()
    columns = ("artist_id", "rank", "user_id", "score")
    chunks = _top_n_chunks(
        model.item_ids,
        model.user_ids,
        lambda rows: topn.top_n_users(
            item_vectors[rows], user_vectors, n=n, exclude=listeners[rows]
        ),
        columns,
        extra,
    )
    if placed is None:
        return chunks
    return itertools.chain(
        chunks,
        _top_n_chunks(
            placed.ids,
            model.user_ids,
            lambda rows: placed.top_users(rows, user_vectors, item_vectors, n),
            columns,
            {**extra, "source": TAGS},
        ),
    )


def similar_artists(
    recommender: Recommender, n: int, extra: dict, placed: PlacedArtists | None = None
) -> pd.DataFrame:
    """``(artist_id, rank, similar_artist_id, similarity, *extra)``: ``similarity`` the cosine
    of the ranking model's artist factors, the order that cosine shrunk by both artists'
    listeners (:func:`topn.support_rows`).

    With ``placed`` artists (counted as :data:`PLACED_SUPPORT` listeners), a placed artist is
    listed among the trained artists' neighbours, and its own neighbours are trained artists
    (:func:`topn.similar_items`). ``artist_source`` and ``similar_artist_source`` say which is
    which ('ratings' or 'tags', as ``artist_factors`` does), 'ratings' throughout without: the
    columns are there on every home, so a query of them never depends on its tags."""
    model = recommender.model
    ids, factors = _with_placed(model.item_ids, model.item_factors, placed)
    n_placed = len(ids) - model.n_items
    support = np.concatenate(
        [listeners(recommender.seen, model.n_items), np.full(n_placed, PLACED_SUPPORT)]
    )
    index, similarity = topn.similar_items(factors, n, support=support, placed=n_placed)
    flat = topn.flatten_top_n(ids, ids, index, similarity)
    columns = ("artist_id", "rank", "similar_artist_id", "similarity")
    frame = pd.DataFrame(dict(zip(columns, flat, strict=True))).assign(**extra)
    source = np.where(np.arange(len(ids)) < model.n_items, RATINGS, TAGS)
    query_rows, _ = np.nonzero(index >= 0)
    return frame.assign(
        artist_source=source[query_rows], similar_artist_source=source[index[index >= 0]]
    )


def listeners(seen: csr_matrix, n_items: int) -> np.ndarray:
    """Each of the first ``n_items`` artists' listeners in ``seen`` (users × artists): the
    support :func:`similar_artists` shrinks by."""
    counts = np.bincount(seen.indices, minlength=n_items)
    return counts[:n_items]


def seen_of(folder) -> csr_matrix:
    """The interactions a champion's files hold (``seen.npz``: what it was trained and serves
    on)."""
    return load_npz(Path(folder) / "seen.npz").tocsr()


def artist_factors(
    ids: np.ndarray, vectors: dict[str, np.ndarray], version: str, cold=None
) -> pa.Table:
    """:func:`factors` of the artists with ``source`` 'ratings', then, where ``cold`` (the
    ids and :class:`~musicrec_assets.evaluation.cold_artists.TagFactors` of artists known only
    by their tags) passed its gate, theirs with ``source`` 'tags'."""
    trained = factors(ids, "artist_id", vectors, version)
    parts = [trained.append_column("source", pa.array([RATINGS] * trained.num_rows))]
    if cold is not None and cold[1].passed and len(cold[0]):
        width = trained.schema.field("factors").type.list_size
        mapped = {
            role: np.pad(values, ((0, 0), (0, width - values.shape[1])))
            for role, values in cold[1].vectors.items()
        }
        placed = factors(cold[0], "artist_id", mapped, version)
        parts.append(placed.append_column("source", pa.array([TAGS] * placed.num_rows)))
    return pa.concat_tables(parts)


def factors(
    ids: np.ndarray, id_column: str, vectors: dict[str, np.ndarray], version: str
) -> pa.Table:
    """``(<id_column>, model, factors FLOAT[k], model_version)``: one row of vectors per id and
    model (``vectors`` by model name, e.g. "ranking" and "rating").

    The models' widths differ, and a DuckDB array column has one: each model's vectors are
    padded with zeros to the widest, which leaves every inner product as it was.
    """
    width = max(values.shape[1] for values in vectors.values())
    padded = [
        np.pad(np.asarray(values, dtype=np.float32), ((0, 0), (0, width - values.shape[1])))
        for values in vectors.values()
    ]
    flat = pa.array(np.ascontiguousarray(np.vstack(padded)).ravel())
    return pa.table(
        {
            id_column: pa.array(np.tile(ids.astype(str), len(vectors))),
            "model": pa.array(np.repeat(list(vectors), len(ids))),
            "factors": pa.FixedSizeListArray.from_arrays(flat, width),
            "model_version": pa.array([version] * (len(ids) * len(vectors))),
        }
    )
