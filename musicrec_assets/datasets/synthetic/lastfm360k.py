"""A play-count set shaped like Last.fm-360K: users × artists × rows, a long tail, and each
listener leaning to one genre; streamed into a gzip landing folder, or built in memory as a
play matrix for benchmarks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
from scipy.sparse import csr_matrix

from musicrec_assets.datasets.synthetic.bulk import (
    _bulk_catalogue,
    _write_json_lines,
    write_catalogue,
)
from musicrec_assets.datasets.synthetic.sampling import (
    ArtistDraw,
    _heavy_tailed_plays,
    _per_user_counts,
    _popular_draw,
    _user_artist_pairs,
    _zipf_popularity,
)

LASTFM360K_USERS = 360_000
LASTFM360K_ARTISTS = 160_000
LASTFM360K_ROWS = 17_500_000
# taste in the 360K shape: artist i is of genre i % GENRES, and this share of a listener's
# artists is drawn from their own genre (the rest from all artists), by popularity either way
LASTFM360K_GENRES = 40
LASTFM360K_TASTE_SHARE = 0.6


def generate_lastfm360k_shape(
    out_dir: str | Path, scale: float = 1.0, seed: int = 0
) -> dict[str, int]:
    """Write a synthetic play-count landing folder shaped like Last.fm-360K.

    At ``scale=1`` about 360,000 users (40-hex ids, like the original's SHA-1s) ×
    160,000 artists × 17.5 million rows; every size scales linearly. Artist
    popularity is Zipf–Mandelbrot, rows per user are heavy-tailed around 48.6,
    plays are lognormal, and no (user, artist) pair repeats. Generated and written
    in chunks, so memory stays bounded whatever the scale.

    Parameters
    ----------
    out_dir : str or Path
        Landing folder; gets ``users/users.jsonl.gz``, ``artists/artists.jsonl.gz``
        and ``ratings/ratings.jsonl.gz`` (rows with ``plays`` only).
    scale : float
        Fraction of the full size.
    seed : int

    Returns
    -------
    dict of str to int
        Rows written per entity: ``users``, ``artists``, ``ratings``.
    """
    rng = np.random.default_rng(seed)
    n_users, n_artists, n_rows, counts, draw = _lastfm360k_plan(rng, scale)
    catalogue = _bulk_catalogue(rng, n_users, n_artists)
    user_ids = pa.array(catalogue.user_ids, pa.string())
    artist_ids = pa.array(catalogue.artist_ids, pa.string())

    def batches() -> Iterator[pa.RecordBatch]:
        for user_index, artist_index in _user_artist_pairs(rng, counts, draw, n_artists, 1_000_000):
            yield pa.record_batch(
                {
                    "user_id": user_ids.take(user_index),
                    "artist_id": artist_ids.take(artist_index),
                    "plays": _heavy_tailed_plays(rng, len(user_index)),
                }
            )

    out_dir = Path(out_dir)
    write_catalogue(catalogue, out_dir, gzip=True)
    _write_json_lines(batches(), out_dir / "ratings" / "ratings.jsonl.gz")
    return {"users": n_users, "artists": n_artists, "ratings": n_rows}


def lastfm360k_play_matrix(scale: float = 1.0, seed: int = 0) -> csr_matrix:
    """The plays of a :func:`generate_lastfm360k_shape` world as a users × artists matrix,
    with no ids and no files: for benchmarks of sizes past what a landing folder needs to
    show. Same distribution as the files of the same ``scale``, not the same draws."""
    rng = np.random.default_rng(seed)
    n_users, n_artists, _, counts, draw = _lastfm360k_plan(rng, scale)
    users, artists, plays = [], [], []
    for user_index, artist_index in _user_artist_pairs(rng, counts, draw, n_artists, 1_000_000):
        users.append(user_index.astype(np.int32))
        artists.append(artist_index.astype(np.int32))
        plays.append(_heavy_tailed_plays(rng, len(user_index)).astype(np.float32))
    return csr_matrix(
        (np.concatenate(plays), (np.concatenate(users), np.concatenate(artists))),
        shape=(n_users, n_artists),
    )


def _lastfm360k_plan(
    rng: np.random.Generator, scale: float
) -> tuple[int, int, int, np.ndarray, ArtistDraw]:
    """Sizes, rows per user and the artist draw of a Last.fm-360K-shaped world."""
    n_users = max(1, round(LASTFM360K_USERS * scale))
    n_artists = max(2, round(LASTFM360K_ARTISTS * scale))
    n_rows = max(n_users, round(LASTFM360K_ROWS * scale))
    counts = _per_user_counts(rng, n_users, n_rows, minimum=1, cap=n_artists // 2, sigma=0.9)
    popularity = _zipf_popularity(rng, n_artists, exponent=1.0, offset=10.0)
    draw = _genre_leaning_draw(rng, popularity, LASTFM360K_GENRES, LASTFM360K_TASTE_SHARE, n_users)
    return n_users, n_artists, n_rows, counts, draw


def _genre_leaning_draw(
    rng: np.random.Generator,
    popularity: np.ndarray,
    n_genres: int,
    taste_share: float,
    n_users: int,
) -> ArtistDraw:
    """A share ``taste_share`` of each user's draws from the artists of their genre (artist
    ``i`` is of genre ``i % n_genres``, users get one at random), the rest from all artists;
    by popularity within either."""
    user_genre = rng.integers(n_genres, size=n_users)
    per_genre = -(-len(popularity) // n_genres)
    padded = np.zeros(per_genre * n_genres)
    padded[: len(popularity)] = popularity
    # row g: the popularity cdf of artists g, g + n_genres, …; offset by g so that one
    # searchsorted of g + u over the flattened rows draws within genre g
    cdf = np.cumsum(padded.reshape(per_genre, n_genres).T, axis=1)
    cdf /= cdf[:, -1:]
    offset_cdf = (cdf + np.arange(n_genres)[:, None]).ravel()
    anyone = _popular_draw(rng, popularity)

    def draw(users: np.ndarray) -> np.ndarray:
        artists = anyone(users)
        leaning = rng.random(len(users)) < taste_share
        genres = user_genre[users[leaning]]
        position = np.searchsorted(offset_cdf, genres + rng.random(len(genres)), side="right")
        column = np.minimum(position - genres * per_genre, per_genre - 1)
        artists[leaning] = np.minimum(genres + n_genres * column, len(popularity) - 1)
        return artists

    return draw
