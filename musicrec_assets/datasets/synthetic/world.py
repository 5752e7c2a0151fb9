"""A small in-memory world of users, artists and ratings with planted taste structure: the
bundled demo sample, and what the tests run on.

Ratings follow ``clip(round_half(μ + b_u + b_i + x_u · y_i + ε), 0.5, 5.0)``, where the artist
factors ``y_i`` are genre loadings, so a factor model has something a bias-only baseline cannot
see. Which artists a user rates depends on popularity (Zipf–Mandelbrot) and taste, and every
rated pair also carries a play count driven by the same affinity, so the implicit path has
signal too.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from musicrec_assets.datasets.synthetic.names import _artist_names, _person_names, _random_uuids
from musicrec_assets.datasets.synthetic.sampling import (
    EPOCH_2006,
    EPOCH_2025,
    _gumbel_top_k,
    _per_user_counts,
    _zipf_popularity,
)
from musicrec_assets.warehouse.landing import landing_path, write_json_records

LandingFormat = Literal["jsonl", "json"]

GENRES = (
    "indie rock",
    "metal",
    "electronic",
    "hip hop",
    "jazz",
    "folk",
    "classical",
    "pop",
    "punk",
    "soul",
    "reggae",
    "ambient",
)

SAMPLE_DATA_DIR = Path(__file__).resolve().parents[2] / "sample_data"


@dataclass(frozen=True)
class SampleWorld:
    """A synthetic world, one DataFrame per landing entity.

    Attributes
    ----------
    users : pandas.DataFrame
        ``id``, ``first_name``, ``last_name``.
    artists : pandas.DataFrame
        ``id`` (MusicBrainz-style UUID), ``name``, and the planted ``genre`` and
        ``popularity`` (sampling weight) that landing files leave out.
    ratings : pandas.DataFrame
        ``user_id``, ``artist_id``, ``rating`` (half stars, 0.5–5.0), ``plays`` (≥ 1)
        and ``timestamp`` (epoch seconds), sorted by user then time.
    """

    users: pd.DataFrame
    artists: pd.DataFrame
    ratings: pd.DataFrame


def generate_world(
    seed: int = 42,
    n_users: int = 300,
    n_artists: int = 10_000,
    n_ratings: int = 30_000,
    *,
    n_genres: int = 10,
    rank: int = 8,
    min_ratings_per_user: int = 20,
    global_mean: float = 2.7,
    user_bias_std: float = 0.35,
    artist_bias_std: float = 0.3,
    taste_std: float = 1.2,
    noise_std: float = 0.3,
    taste_selection: float = 1.2,
    popularity_exponent: float = 1.0,
    popularity_offset: float = 3.0,
) -> SampleWorld:
    """Generate a world of users, artists and ratings with planted taste structure.

    Parameters
    ----------
    seed : int
        Seed of the only random generator used; same seed, same world.
    n_users, n_artists, n_ratings : int
        Sizes; the rating count is met exactly.
    n_genres : int
        Genres (at most ``len(GENRES)``); each artist has a primary and a secondary one.
    rank : int
        Dimension of the latent taste space the genres are embedded in.
    min_ratings_per_user : int
        Floor of each user's rating count; the rest is spread heavy-tailed.
    global_mean, user_bias_std, artist_bias_std, taste_std, noise_std : float
        Rating model ``μ + b_u + b_i + taste + ε`` before rounding to half stars.
    taste_selection : float
        How strongly users pick artists they like (log-odds per taste std).
    popularity_exponent, popularity_offset : float
        Zipf–Mandelbrot popularity ``(rank + offset) ** -exponent`` of artists.

    Returns
    -------
    SampleWorld
    """
    if not 1 <= n_genres <= len(GENRES):
        raise ValueError(f"n_genres must be in 1..{len(GENRES)}, got {n_genres}")
    rng = np.random.default_rng(seed)
    first_names, last_names, user_ids = _person_names(rng, n_users)
    artist_ids = _random_uuids(rng, n_artists)
    artist_names = _artist_names(rng, n_artists)
    popularity = _zipf_popularity(rng, n_artists, popularity_exponent, popularity_offset)

    # Genres are points in a rank-dimensional taste space; an artist sits between its
    # primary and secondary genre plus an idiosyncratic offset, so artist factors are
    # low-rank but not merely a genre label.
    genre_share = rng.dirichlet(np.full(n_genres, 3.0))
    primary = rng.choice(n_genres, size=n_artists, p=genre_share)
    secondary = rng.choice(n_genres, size=n_artists, p=genre_share)
    genre_loadings = rng.normal(0.0, 1.0, size=(n_genres, rank))
    artist_factors = (
        0.8 * genre_loadings[primary]
        + 0.2 * genre_loadings[secondary]
        + rng.normal(0.0, 0.4, size=(n_artists, rank))
    )
    user_factors = rng.normal(0.0, 1.0, size=(n_users, rank))
    # Var(x·y) over users with x ~ N(0, I) is the mean squared norm of y.
    artist_factors *= taste_std / math.sqrt(np.mean(np.sum(artist_factors**2, axis=1)))
    user_bias = rng.normal(0.0, user_bias_std, size=n_users)
    artist_bias = rng.normal(0.0, artist_bias_std, size=n_artists)
    # Listening volume is a trait of the user, independent of how they rate.
    user_log_activity = rng.normal(math.log(20.0), 0.8, size=n_users)

    counts = _per_user_counts(
        rng, n_users, n_ratings, minimum=min_ratings_per_user, cap=n_artists // 2, sigma=0.8
    )
    log_popularity = np.log(popularity)
    rows = []
    for user in range(n_users):
        taste = artist_factors @ user_factors[user]
        log_weight = log_popularity + taste_selection * taste / taste_std
        rated = _gumbel_top_k(rng, log_weight, counts[user])
        affinity = taste[rated] + artist_bias[rated]
        score = global_mean + user_bias[user] + affinity
        score += rng.normal(0.0, noise_std, size=len(rated))
        log_plays = user_log_activity[user] + 0.7 * affinity + rng.normal(0.0, 0.7, len(rated))
        start = rng.integers(EPOCH_2006, EPOCH_2025 - 86_400)
        span = min(int(rng.exponential(2 * 365 * 86_400)) + 86_400, EPOCH_2025 - start)
        rows.append(
            pd.DataFrame(
                {
                    "user_index": user,
                    "artist_index": rated,
                    "rating": np.clip(np.round(score * 2.0) / 2.0, 0.5, 5.0),
                    "plays": np.maximum(1, np.round(np.exp(log_plays))).astype(np.int64),
                    "timestamp": start + rng.integers(0, span, size=len(rated)),
                }
            )
        )
    ratings = pd.concat(rows, ignore_index=True).sort_values(
        ["user_index", "timestamp", "artist_index"], kind="stable", ignore_index=True
    )
    ratings.insert(0, "user_id", user_ids[ratings["user_index"].to_numpy()])
    ratings.insert(1, "artist_id", artist_ids[ratings["artist_index"].to_numpy()])
    ratings = ratings.drop(columns=["user_index", "artist_index"])

    users = pd.DataFrame({"id": user_ids, "first_name": first_names, "last_name": last_names})
    artists = pd.DataFrame(
        {
            "id": artist_ids,
            "name": artist_names,
            "genre": np.asarray(GENRES)[primary],
            "popularity": popularity,
        }
    )
    return SampleWorld(users=users, artists=artists, ratings=ratings)


def write_landing(
    world: SampleWorld,
    out_dir: str | Path,
    fmt: LandingFormat = "jsonl",
    gzip: bool | Collection[str] = False,
) -> dict[str, Path]:
    """Write a world as a landing folder: ``users/``, ``artists/``, ``ratings/``.

    Parameters
    ----------
    world : SampleWorld
    out_dir : str or Path
        Created if missing; existing files of the same name are replaced.
    fmt : {"jsonl", "json"}
        JSON Lines, or one JSON array per file.
    gzip : bool or collection of str
        True compresses every file (``.gz`` suffix), a collection of entity names
        (e.g. ``{"ratings"}``) only those. The gzip header carries no name or time,
        so the same world gives the same bytes.

    Returns
    -------
    dict of str to Path
        Entity name to the file written.
    """
    if fmt not in ("jsonl", "json"):
        raise ValueError(f"fmt must be 'jsonl' or 'json', got {fmt!r}")
    entities = {
        "users": _records(world.users, ["id", "first_name", "last_name"]),
        "artists": _records(world.artists, ["id", "name"]),
        "ratings": _records(
            world.ratings, ["user_id", "artist_id", "rating", "plays", "timestamp"]
        ),
    }
    compressed = set(entities) if gzip is True else set(gzip or ())
    paths = {
        entity: landing_path(out_dir, entity, f"{entity}.{fmt}", entity in compressed)
        for entity in entities
    }
    for entity, records in entities.items():
        write_json_records(paths[entity], records)
    return paths


def write_demo_sample(out_dir: str | Path = SAMPLE_DATA_DIR) -> dict[str, Path]:
    """Write the bundled demo landing folder: the default world, ratings gzip'd.

    Parameters
    ----------
    out_dir : str or Path
        Defaults to the package's ``sample_data`` folder, which is regenerated so.

    Returns
    -------
    dict of str to Path
        Entity name to the file written.
    """
    # Only the ratings are compressed: users and artists stay readable in the repository
    # and the whole sample stays under 2 MB.
    return write_landing(generate_world(seed=42), out_dir, gzip={"ratings"})


def _records(frame: pd.DataFrame, columns: list[str]) -> Iterator[dict]:
    # .tolist() turns numpy scalars into Python ones json can serialize.
    for values in zip(*(frame[column].tolist() for column in columns), strict=True):
        yield dict(zip(columns, values, strict=True))
