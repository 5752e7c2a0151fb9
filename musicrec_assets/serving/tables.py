"""The rows of the published recommendation tables, computed from a :class:`Recommender`.

Top-N tables come as an iterator of long-format DataFrames, ``CHUNK_ROWS`` queries at a time,
so memory stays bounded on large catalogues; the caller writes them as they come.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa

from musicrec_assets.serving import topn
from musicrec_assets.serving.recommender import Recommender

CHUNK_ROWS = 50_000  # queries per chunk: bounds memory on large catalogues


def _top_n_chunks(
    query_ids: np.ndarray,
    candidate_ids: np.ndarray,
    top_n: Callable[[slice], tuple[np.ndarray, np.ndarray]],
    columns: tuple[str, str, str, str],
    extra: dict,
) -> Iterator[pd.DataFrame]:
    """Long-format top-N rows, ``CHUNK_ROWS`` queries at a time; ``top_n(rows)`` scores a slice."""
    for start in range(0, len(query_ids), CHUNK_ROWS):
        rows = slice(start, min(start + CHUNK_ROWS, len(query_ids)))
        flat = topn.flatten_top_n(query_ids[rows], candidate_ids, *top_n(rows))
        yield pd.DataFrame(dict(zip(columns, flat, strict=True))).assign(**extra)


def user_recommendations(recommender: Recommender, n: int, extra: dict) -> Iterator[pd.DataFrame]:
    """``(user_id, rank, artist_id, score, *extra)``: each user's top ``n`` unrated artists."""
    model = recommender.model
    user_vectors, item_vectors = model.user_vectors(), model.item_vectors()
    return _top_n_chunks(
        model.user_ids,
        model.item_ids,
        lambda rows: topn.top_n_items(
            user_vectors[rows], item_vectors, seen=recommender.seen[rows], n=n
        ),
        ("user_id", "rank", "artist_id", "score"),
        extra,
    )


def artist_top_users(recommender: Recommender, n: int, extra: dict) -> Iterator[pd.DataFrame]:
    """``(artist_id, rank, user_id, score, *extra)``: the top ``n`` users to promote each
    artist to, its current listeners excluded."""
    model = recommender.model
    user_vectors, item_vectors = model.user_vectors(), model.item_vectors()
    listeners = recommender.seen.T.tocsr()
    return _top_n_chunks(
        model.item_ids,
        model.user_ids,
        lambda rows: topn.top_n_users(
            item_vectors[rows], user_vectors, n=n, exclude=listeners[rows]
        ),
        ("artist_id", "rank", "user_id", "score"),
        extra,
    )


def similar_artists(recommender: Recommender, n: int, extra: dict) -> pd.DataFrame:
    """``(artist_id, rank, similar_artist_id, similarity, *extra)`` by factor cosine."""
    model = recommender.model
    index, similarity = topn.similar_items(model.item_factors, n)
    flat = topn.flatten_top_n(model.item_ids, model.item_ids, index, similarity)
    columns = ("artist_id", "rank", "similar_artist_id", "similarity")
    return pd.DataFrame(dict(zip(columns, flat, strict=True))).assign(**extra)


def factors(ids: np.ndarray, id_column: str, vectors: np.ndarray, version: str) -> pa.Table:
    """``(<id_column>, factors FLOAT[k], model_version)``: one row of vectors per id."""
    width = vectors.shape[1]
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel())
    return pa.table(
        {
            id_column: pa.array(ids.astype(str)),
            "factors": pa.FixedSizeListArray.from_arrays(flat, width),
            "model_version": pa.array([version] * len(ids)),
        }
    )
