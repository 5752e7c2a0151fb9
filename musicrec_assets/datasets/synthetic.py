"""Synthetic listeners, artists and ratings, written in the landing JSON layout.

Three generators, all deterministic from a seed:

``generate_world``
    A small in-memory world with planted taste structure (the bundled demo sample).
    Ratings follow ``clip(round_half(μ + b_u + b_i + x_u · y_i + ε), 0.5, 5.0)``,
    where the artist factors ``y_i`` are genre loadings, so a factor model has
    something a bias-only baseline cannot see. Which artists a user rates depends
    on popularity (Zipf–Mandelbrot) and taste, and every rated pair also carries a
    play count driven by the same affinity, so the implicit path has signal too.
``write_bulk_ratings``
    A large ratings JSON Lines file for benchmarks, streamed chunk by chunk.
``generate_lastfm360k_shape``
    A play-count set shaped like Last.fm-360K (users × artists × rows, long tail, each
    listener leaning to one genre), streamed into a gzip landing folder.

The bulk writers build numpy chunks, wrap them as Arrow record batches and let
DuckDB's ``COPY ... (FORMAT json)`` format them (formatting millions of lines in
Python would dominate the run time) while a second thread gzips the previous chunk.

Every file is written under a ``.part`` name and renamed when complete, so a landing
scan running at the same time never picks up half a file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import unicodedata
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from gzip import GzipFile
from pathlib import Path
from typing import IO, Literal

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
from scipy.sparse import csr_matrix

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

# fmt: off
FIRST_NAMES = (
    "Seamus", "Aaliyah", "Abdul", "Ada", "Adele", "Agnes", "Aiko", "Alejandro", "Amara",
    "Anders", "Anika", "Arjun", "Astrid", "Beatriz", "Benedikt", "Bjorn", "Bruno", "Camille",
    "Carmen", "Chen", "Chiara", "Dagny", "Dario", "Dmitri", "Eamon", "Elif", "Elena", "Emeka",
    "Emil", "Esperanza", "Fatima", "Felix", "Freya", "Gaspard", "Greta", "Guillermo", "Hana",
    "Hamid", "Hugo", "Ingrid", "Ines", "Isaac", "Jamal", "Jana", "Jonas", "Jorge", "Kai",
    "Kamala", "Keanu", "Kenji", "Lars", "Leila", "Lena", "Liam", "Lorenzo", "Lucia", "Magnus",
    "Malik", "Maren", "Mateo", "Mei", "Milan", "Mira", "Nadia", "Naveen", "Nils", "Noor",
    "Oksana", "Olga", "Omar", "Oscar", "Paloma", "Pavel", "Priya", "Quentin", "Rafael", "Rania",
    "Rhiannon", "Rosa", "Ruben", "Saanvi", "Selma", "Sergei", "Sigrid", "Silas", "Sofia",
    "Soren", "Tariq", "Thea", "Tomas", "Ulla", "Valentina", "Viktor", "Wanjiru", "Wei",
    "Xavier", "Yara", "Yusuf", "Zainab", "Zoe", "Zoltan", "Maeve", "Declan", "Siobhan",
    "Ronan", "Tove", "Eero", "Aino", "Kalani", "Leilani", "Ngozi", "Chidi", "Ayesha", "Diego",
    "Renata", "Ivo", "Petra", "Marek", "Zuzana", "Hiroshi", "Yuki", "Min-jun", "Ji-woo",
)

LAST_NAMES = (
    "Runolfsdottir", "Abernathy", "Adeyemi", "Albrecht", "Almeida", "Andersson", "Bakshi",
    "Balogun", "Bauer", "Bergstrom", "Bianchi", "Borkowski", "Brennan", "Castellanos",
    "Chakraborty", "Cho", "Christiansen", "Dalgaard", "Delacroix", "Dimitrov", "Donnelly",
    "Eriksen", "Esposito", "Fagerlund", "Farouk", "Fitzgerald", "Fontaine", "Gallagher",
    "Gonzaga", "Gudmundsson", "Haddad", "Halvorsen", "Hashimoto", "Hernandez", "Hoffmann",
    "Ibrahim", "Ivanova", "Jablonski", "Jakobsen", "Jimenez", "Kaminski", "Karlsson",
    "Kawasaki", "Kowalczyk", "Kuznetsov", "Lachance", "Lindqvist", "Lombardi", "Lundgren",
    "MacAllister", "Magnusson", "Marchetti", "Mbeki", "Moreau", "Nakamura", "Navarro",
    "Nieminen", "Novak", "Nwosu", "Obrien", "Okafor", "Oliveira", "Ortega", "Ostrowski",
    "Papadopoulos", "Petrov", "Quintero", "Rahman", "Ramirez", "Rasmussen", "Reinholt",
    "Rinaldi", "Rosenberg", "Sandoval", "Santangelo", "Schneider", "Silvestri", "Sokolova",
    "Stefansson", "Svensson", "Takahashi", "Thorsdottir", "Toivonen", "Trujillo", "Vasquez",
    "Verhoeven", "Villanueva", "Virtanen", "Wachowski", "Weatherby", "Whitfield", "Wojcik",
    "Yamamoto", "Zamora", "Zielinski", "Zubrowski", "Ashworth", "Blackwood", "Carrington",
    "Davenport", "Ellsworth", "Fairbanks", "Greenleaf", "Hargreaves", "Kilpatrick",
    "Lockhart", "Montgomery", "Pemberton", "Rutherford", "Thistlewood", "Underhill",
    "Van der Berg", "O'Sullivan", "Müller", "Þórsson", "Nørgaard", "Åberg", "Şahin",
    "Gómez", "Kovačević", "Dvořák", "Łukasik",
)

ADJECTIVES = (
    "Black", "Silver", "Electric", "Velvet", "Hollow", "Crimson", "Golden", "Broken",
    "Midnight", "Paper", "Neon", "Quiet", "Wild", "Frozen", "Burning", "Lonely", "Cosmic",
    "Secret", "Northern", "Lunar", "Savage", "Gentle", "Restless", "Violet", "Iron", "Glass",
    "Sleeping", "Wandering", "Radiant", "Faded", "Hidden", "Distant", "Static", "Tender",
    "Bitter", "Sunken", "Crystal", "Dusty", "Endless", "Feral", "Haunted", "Infinite",
    "Little", "Magnetic", "Obsidian", "Pale", "Rusty", "Scarlet", "Twin", "Wicked", "Young",
    "Ancient", "Analog", "Blue", "Copper", "Drowned", "Empty", "Fading", "Grey", "Holy",
)

NOUNS = (
    "Wolf", "Harbor", "Echo", "Mirror", "Lantern", "Comet", "Garden", "Engine", "River",
    "Ghost", "Falcon", "Island", "Machine", "Orchid", "Prophet", "Saint", "Shadow", "Signal",
    "Temple", "Thunder", "Tide", "Tower", "Valley", "Violin", "Whale", "Anchor", "Cathedral",
    "Desert", "Ember", "Forest", "Glacier", "Horizon", "Kingdom", "Lighthouse", "Meadow",
    "Monarch", "Ocean", "Parade", "Pilot", "Raven", "Satellite", "Serpent", "Sparrow",
    "Storm", "Summer", "Tiger", "Union", "Vapor", "Winter", "Canyon", "Circus", "Diamond",
    "Fortress", "Heart", "Jaguar", "Mountain", "Palace", "Rocket", "Siren", "Station",
)

PLURAL_NOUNS = (
    "Wolves", "Echoes", "Mirrors", "Lanterns", "Comets", "Gardens", "Engines", "Rivers",
    "Ghosts", "Falcons", "Islands", "Machines", "Orchids", "Prophets", "Saints", "Shadows",
    "Signals", "Temples", "Tides", "Towers", "Valleys", "Whales", "Anchors", "Embers",
    "Forests", "Horizons", "Kingdoms", "Meadows", "Monarchs", "Oceans", "Pilots", "Ravens",
    "Satellites", "Serpents", "Sparrows", "Storms", "Tigers", "Diamonds", "Hearts",
    "Jaguars", "Mountains", "Rockets", "Sirens", "Stations", "Strangers", "Lovers",
    "Brothers", "Sisters", "Kids", "Dreamers", "Drifters", "Outlaws", "Pioneers", "Giants",
)

PLACES = (
    "Brooklyn", "Reykjavik", "Lagos", "Kyoto", "Marseille", "Detroit", "Bergen", "Havana",
    "Tbilisi", "Memphis", "Glasgow", "Montreal", "Bristol", "Osaka", "Lisbon", "Nairobi",
    "Gothenburg", "Seattle", "Manchester", "Kraków", "São Paulo", "Tromsø", "Zürich",
)

# Syllables of invented band names; a few carry diacritics so that non-ASCII names
# (and ensure_ascii=False) get exercised on every run.
SYLLABLES = (
    "ka", "lo", "mi", "ra", "ven", "tor", "shi", "na", "bel", "dor", "zu", "qua", "rin",
    "sol", "mar", "vi", "ta", "ne", "xo", "lu", "gra", "fen", "ori", "tha", "mo", "sen",
    "ly", "kor", "dra", "eli", "ro", "sa", "an", "ul", "ix", "jo", "pe", "ri", "vo", "za",
    "rø", "sé", "lú", "mä", "ñu", "kø", "tí", "ös",
)
# fmt: on

PREFIXES = ("DJ", "MC", "Lil", "Big", "Young")
ENSEMBLES = ("Trio", "Quartet", "Collective", "Orchestra", "Ensemble", "Sound System", "Band")

# Letters that Unicode decomposition does not reduce to ASCII, for user ids.
ASCII_FALLBACKS = str.maketrans(
    {"Þ": "Th", "þ": "th", "Ł": "L", "ł": "l", "Ø": "O", "ø": "o", "Æ": "Ae", "æ": "ae", "ß": "ss"}
)

ARTIST_NAME_TEMPLATES = 9
MAX_NAME_ATTEMPTS = 50

EPOCH_2006 = 1_136_073_600  # 2006-01-01T00:00:00Z
EPOCH_2025 = 1_735_689_600  # 2025-01-01T00:00:00Z

SAMPLE_DATA_DIR = Path(__file__).resolve().parents[1] / "sample_data"

# Level 3 compresses about twice as fast as the default 6 for ~8% bigger files, which
# matters for the multi-gigabyte bulk outputs.
GZIP_LEVEL = 3

LASTFM360K_USERS = 360_000
LASTFM360K_ARTISTS = 160_000
LASTFM360K_ROWS = 17_500_000
# taste in the 360K shape: artist i is of genre i % GENRES, and this share of a listener's
# artists is drawn from their own genre (the rest from all artists), by popularity either way
LASTFM360K_GENRES = 40
LASTFM360K_TASTE_SHARE = 0.6


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


@dataclass(frozen=True)
class Catalogue:
    """The users and artists a bulk ratings file refers to.

    Attributes
    ----------
    user_ids : numpy.ndarray
        ``str`` ids, position = the user's index in the generator.
    artist_ids : numpy.ndarray
        ``str`` MusicBrainz-style UUIDs.
    artist_names : numpy.ndarray
        ``str`` names aligned with ``artist_ids``.
    """

    user_ids: np.ndarray
    artist_ids: np.ndarray
    artist_names: np.ndarray


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
        entity: _landing_path(Path(out_dir), entity, f"{entity}.{fmt}", entity in compressed)
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


def write_catalogue(
    catalogue: Catalogue, out_dir: str | Path, gzip: bool = False
) -> dict[str, Path]:
    """Write the users and artists of a bulk ratings file as landing JSON Lines.

    Parameters
    ----------
    catalogue : Catalogue
    out_dir : str or Path
        Landing folder; ``users/users.jsonl`` and ``artists/artists.jsonl`` go in it.
    gzip : bool
        Compress both files.

    Returns
    -------
    dict of str to Path
        ``"users"`` and ``"artists"`` to the files written.
    """
    out_dir = Path(out_dir)
    users = ({"id": user_id} for user_id in catalogue.user_ids.tolist())
    artists = (
        {"id": artist_id, "name": name}
        for artist_id, name in zip(
            catalogue.artist_ids.tolist(), catalogue.artist_names.tolist(), strict=True
        )
    )
    paths = {
        "users": _landing_path(out_dir, "users", "users.jsonl", gzip),
        "artists": _landing_path(out_dir, "artists", "artists.jsonl", gzip),
    }
    write_json_records(paths["users"], users)
    write_json_records(paths["artists"], artists)
    return paths


def write_bulk_ratings(
    path: str | Path,
    n_rows: int,
    n_users: int,
    n_artists: int,
    seed: int = 0,
    *,
    chunk_rows: int = 1_000_000,
) -> Catalogue:
    """Stream a large ratings JSON Lines file with ``rating``, ``plays`` and ``timestamp``.

    Rows are grouped by user; no (user, artist) pair repeats. Ratings carry user and
    artist biases plus noise, plays are heavy-tailed, artists Zipf-popular.

    Parameters
    ----------
    path : str or Path
        Output file; a name ending in ``.gz`` is gzip-compressed.
    n_rows, n_users, n_artists : int
        Exact sizes; each user gets at least one row and at most half the artists.
    seed : int
    chunk_rows : int
        Rows generated per batch (bounds memory, not the output).

    Returns
    -------
    Catalogue
        The users and artists the rows refer to; write them with `write_catalogue`.
    """
    rng = np.random.default_rng(seed)
    catalogue = _bulk_catalogue(rng, n_users, n_artists)
    counts = _per_user_counts(rng, n_users, n_rows, minimum=1, cap=n_artists // 2, sigma=1.0)
    popularity = _zipf_popularity(rng, n_artists, exponent=1.0, offset=10.0)
    user_bias = rng.normal(0.0, 0.45, size=n_users)
    artist_bias = rng.normal(0.0, 0.4, size=n_artists)
    user_ids = pa.array(catalogue.user_ids, pa.string())
    artist_ids = pa.array(catalogue.artist_ids, pa.string())

    draw = _popular_draw(rng, popularity)

    def batches() -> Iterator[pa.RecordBatch]:
        for user_index, artist_index in _user_artist_pairs(
            rng, counts, draw, n_artists, chunk_rows
        ):
            noise = rng.normal(0.0, 0.8, size=len(user_index))
            score = 3.5 + user_bias[user_index] + artist_bias[artist_index] + noise
            yield pa.record_batch(
                {
                    "user_id": user_ids.take(user_index),
                    "artist_id": artist_ids.take(artist_index),
                    "rating": np.clip(np.round(score * 2.0) / 2.0, 0.5, 5.0),
                    "plays": _heavy_tailed_plays(rng, len(user_index)),
                    "timestamp": rng.integers(EPOCH_2006, EPOCH_2025, size=len(user_index)),
                }
            )

    _write_json_lines(batches(), Path(path))
    return catalogue


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


def write_json_records(path: str | Path, records: Iterable[dict]) -> int:
    """Write dicts to a landing file, under a ``.part`` name renamed when complete.

    The landing scan skips ``.part`` files, so it never reads a half-written one.

    Parameters
    ----------
    path : str or Path
        ``*.jsonl`` for JSON Lines or ``*.json`` for one JSON array, either with an
        optional ``.gz`` (gzip, with no name or time in the header so that the bytes
        depend on the records only). Parent folders are created.
    records : iterable of dict
        Streamed; JSON-serializable values, non-ASCII text written as UTF-8.

    Returns
    -------
    int
        Records written.
    """
    path = Path(path)
    compress = path.suffix == ".gz"
    fmt = Path(path.stem).suffix if compress else path.suffix
    if fmt not in (".jsonl", ".json"):
        raise ValueError(f"{path.name}: expected a .jsonl or .json name, optionally .gz")
    with _atomic_output(path) as raw, _maybe_gzip(raw, compress) as sink:
        return _dump_records(sink, records, array=fmt == ".json")


def _records(frame: pd.DataFrame, columns: list[str]) -> Iterator[dict]:
    # .tolist() turns numpy scalars into Python ones json can serialize.
    for values in zip(*(frame[column].tolist() for column in columns), strict=True):
        yield dict(zip(columns, values, strict=True))


def _dump_records(out: IO[bytes], records: Iterable[dict], *, array: bool) -> int:
    if array:
        out.write(b"[")
    count = 0
    for record in records:
        if count:
            out.write(b",\n" if array else b"\n")
        elif array:
            out.write(b"\n")
        out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode())
        count += 1
    if array:
        out.write(b"\n]\n")
    elif count:
        out.write(b"\n")
    return count


@contextlib.contextmanager
def _atomic_output(path: Path) -> Iterator[IO[bytes]]:
    """A binary file that appears at ``path`` only once closed without error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    try:
        with open(partial, "wb") as raw:
            yield raw
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _landing_path(out_dir: Path, entity: str, name: str, gzip: bool) -> Path:
    return out_dir / entity / (name + ".gz" if gzip else name)


def _write_json_lines(batches: Iterator[pa.RecordBatch], path: Path) -> None:
    """Write record batches as one JSON Lines file, gzip'd if the name ends in ``.gz``.

    DuckDB formats each batch into a scratch file; a background thread appends it to
    the output (compressing if asked) while the next batch is generated. zlib releases
    the GIL, so compression, the slowest step, runs on a second core.
    """
    # The appender is entered last so that, on an error, its pending write finishes
    # before the gzip stream and the file close under it.
    with (
        duckdb.connect() as con,
        tempfile.TemporaryDirectory() as scratch,
        _atomic_output(path) as raw,
        _maybe_gzip(raw, path.suffix == ".gz") as sink,
        ThreadPoolExecutor(max_workers=1) as appender,
    ):
        # One thread keeps each batch's rows in order; the other core compresses.
        con.execute("SET threads = 1")
        chunk_path = Path(scratch) / "chunk.jsonl"
        escaped = str(chunk_path).replace("'", "''")
        appending = None
        for batch in batches:
            con.register("batch_rows", pa.Table.from_batches([batch]))
            con.execute(f"COPY batch_rows TO '{escaped}' (FORMAT json)")
            con.unregister("batch_rows")
            text = chunk_path.read_bytes()
            if appending is not None:
                appending.result()
            appending = appender.submit(sink.write, text)
        if appending is not None:
            appending.result()


def _maybe_gzip(raw: IO[bytes], compress: bool) -> contextlib.AbstractContextManager[IO[bytes]]:
    if not compress:
        return contextlib.nullcontext(raw)
    # No file name and mtime 0 in the header: the bytes depend on the data only.
    return GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=GZIP_LEVEL)


ArtistDraw = Callable[[np.ndarray], np.ndarray]  # user index of each draw → artist index


def _popular_draw(rng: np.random.Generator, popularity: np.ndarray) -> ArtistDraw:
    """Every draw from all artists, in proportion to ``popularity``."""
    cdf = np.cumsum(popularity)
    # Rounding can leave the last value just under 1; a draw above it would fall
    # past the last artist.
    cdf[-1] = 1.0
    return lambda users: np.searchsorted(cdf, rng.random(len(users)), side="right")


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


def _user_artist_pairs(
    rng: np.random.Generator,
    counts: np.ndarray,
    draw: ArtistDraw,
    n_artists: int,
    chunk_rows: int,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (user index, artist index) chunks, each user drawing distinct artists.

    Artists are drawn by ``draw`` with replacement and duplicates dropped, keeping first
    draws: that is sampling without replacement in proportion to the draw's weights.
    Users still short of their count draw again, with growing oversampling.
    """
    chunk_ends = np.searchsorted(np.cumsum(counts), np.arange(chunk_rows, counts.sum(), chunk_rows))
    for users in np.split(np.arange(len(counts)), chunk_ends):
        if len(users) == 0:
            continue
        wanted = counts[users]
        kept_users = np.empty(0, dtype=np.int64)
        kept_artists = np.empty(0, dtype=np.int64)
        short = np.arange(len(users))
        missing = wanted
        oversampling = 1.3
        while len(short):
            draws = np.ceil(missing * oversampling).astype(np.int64) + 2
            new_users = np.repeat(short, draws)
            new_artists = draw(users[new_users])
            candidate_users = np.concatenate([kept_users, new_users])
            candidate_artists = np.concatenate([kept_artists, new_artists])
            # np.unique keeps the first occurrence's index, i.e. the earliest draw.
            _, first = np.unique(candidate_users * n_artists + candidate_artists, return_index=True)
            first.sort()
            candidate_users = candidate_users[first]
            candidate_artists = candidate_artists[first]
            rank_in_user = _rank_within_groups(candidate_users)
            keep = rank_in_user < wanted[candidate_users]
            kept_users = candidate_users[keep]
            kept_artists = candidate_artists[keep]
            have = np.bincount(kept_users, minlength=len(users))
            short = np.flatnonzero(have < wanted)
            missing = wanted[short] - have[short]
            oversampling *= 2.0
        order = np.argsort(kept_users, kind="stable")
        yield users[kept_users[order]], kept_artists[order]


def _rank_within_groups(groups: np.ndarray) -> np.ndarray:
    """Position of each element among earlier elements of the same group value."""
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    run_lengths = np.diff(np.r_[starts, len(groups)])
    ranks_sorted = np.arange(len(groups)) - np.repeat(starts, run_lengths)
    ranks = np.empty_like(ranks_sorted)
    ranks[order] = ranks_sorted
    return ranks


def _per_user_counts(
    rng: np.random.Generator, n_users: int, total: int, *, minimum: int, cap: int, sigma: float
) -> np.ndarray:
    """Heavy-tailed (lognormal-weighted) per-user counts in [minimum, cap] summing to total."""
    if n_users < 1 or not n_users * minimum <= total <= n_users * cap:
        raise ValueError(
            f"cannot give {n_users} users between {minimum} and {cap} rows each, "
            f"{total} in all; change the sizes"
        )
    weights = rng.lognormal(0.0, sigma, size=n_users)
    counts = np.full(n_users, minimum, dtype=np.int64)
    remaining = total - counts.sum()
    while remaining:
        room = counts < cap
        share = np.where(room, weights, 0.0)
        counts += rng.multinomial(remaining, share / share.sum())
        counts = np.minimum(counts, cap)
        remaining = total - counts.sum()
    return counts


def _zipf_popularity(
    rng: np.random.Generator, n_artists: int, exponent: float, offset: float
) -> np.ndarray:
    """Zipf–Mandelbrot weights summing to one, assigned to artists in random order."""
    weights = (np.arange(1, n_artists + 1) + offset) ** -exponent
    return rng.permutation(weights / weights.sum())


def _gumbel_top_k(rng: np.random.Generator, log_weight: np.ndarray, k: int) -> np.ndarray:
    """k distinct indices sampled without replacement in proportion to exp(log_weight)."""
    keys = log_weight + rng.gumbel(size=len(log_weight))
    top = np.argpartition(-keys, k - 1)[:k]
    return top[np.argsort(-keys[top], kind="stable")]


def _heavy_tailed_plays(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.maximum(1, np.round(rng.lognormal(4.0, 1.4, size=n))).astype(np.int64)


def _random_uuids(rng: np.random.Generator, n: int) -> np.ndarray:
    """MusicBrainz-style (version 4) UUID strings from the seeded generator."""
    words = rng.integers(0, 2**64, size=(n, 2), dtype=np.uint64).tolist()
    return np.asarray(
        [str(uuid.UUID(int=(high << 64) | low, version=4)) for high, low in words], dtype=object
    )


def _random_hex_ids(rng: np.random.Generator, n: int, n_hex: int = 40) -> np.ndarray:
    """Hex ids shaped like Last.fm-360K's SHA-1 user ids."""
    digits = rng.bytes(n * n_hex // 2).hex()
    return np.asarray([digits[i : i + n_hex] for i in range(0, n * n_hex, n_hex)], dtype=object)


def _bulk_catalogue(rng: np.random.Generator, n_users: int, n_artists: int) -> Catalogue:
    return Catalogue(
        user_ids=_random_hex_ids(rng, n_users),
        artist_ids=_random_uuids(rng, n_artists),
        artist_names=_artist_names(rng, n_artists),
    )


def _ascii_slug(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(ASCII_FALLBACKS))
    return "".join(c for c in decomposed if c.isascii() and c.isalnum()).lower()


def _person_names(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First names, last names and unique ids (first initial + last name, then 2, 3, …)."""
    first = np.asarray(FIRST_NAMES, dtype=object)[rng.integers(0, len(FIRST_NAMES), n)]
    last = np.asarray(LAST_NAMES, dtype=object)[rng.integers(0, len(LAST_NAMES), n)]
    seen: dict[str, int] = {}
    ids = []
    for first_name, last_name in zip(first, last, strict=True):
        base = _ascii_slug(first_name)[0] + _ascii_slug(last_name)
        seen[base] = seen.get(base, 0) + 1
        ids.append(base if seen[base] == 1 else f"{base}{seen[base]}")
    return first, last, np.asarray(ids, dtype=object)


def _invented_word(picks: list[int]) -> str:
    """A made-up word of 2 or 3 syllables, e.g. "Korvina"; uses up to 4 picks."""
    n_syllables = 2 + picks[0] % 2
    return "".join(SYLLABLES[p % len(SYLLABLES)] for p in picks[1 : 1 + n_syllables]).title()


def _artist_name(picks: list[int]) -> str:
    """One artist name from 6 random integers: a template and the words it takes."""

    def word(words: tuple[str, ...], pick: int) -> str:
        return words[pick % len(words)]

    template, a, b, c, _, f = picks[0] % ARTIST_NAME_TEMPLATES, *picks[1:]
    if template == 0:
        return f"The {word(ADJECTIVES, a)} {word(PLURAL_NOUNS, b)}"
    if template == 1:
        return f"{word(ADJECTIVES, a)} {word(NOUNS, b)}"
    if template == 2:
        return f"{word(FIRST_NAMES, a)} {word(LAST_NAMES, b)}"
    if template == 3:
        return f"{word(PLURAL_NOUNS, a)} of {word(PLACES, b)}"
    if template == 4:
        return _invented_word(picks[1:5])
    if template == 5:
        return f"{word(FIRST_NAMES, a)} {word(LAST_NAMES, b)} & the {word(PLURAL_NOUNS, c)}"
    if template == 6:
        return f"{word(PREFIXES, a)} {_invented_word(picks[2:6])}"
    if template == 7:
        return f"{_invented_word(picks[1:5])} {word(NOUNS, f)}"
    return f"{word(NOUNS, a)}{word(NOUNS, b).lower()} {word(ENSEMBLES, c)}"


def _artist_names(rng: np.random.Generator, n: int) -> np.ndarray:
    """n distinct plausible artist names; collisions are redrawn."""
    names: list[str | None] = [None] * n
    taken: set[str] = set()
    pending = np.arange(n)
    for _ in range(MAX_NAME_ATTEMPTS):
        picks = rng.integers(0, 2**31, size=(len(pending), 6)).tolist()
        still_pending = []
        for position, row in zip(pending.tolist(), picks, strict=True):
            name = _artist_name(row)
            if name in taken:
                still_pending.append(position)
            else:
                taken.add(name)
                names[position] = name
        pending = np.asarray(still_pending, dtype=np.int64)
        if not len(pending):
            return np.asarray(names, dtype=object)
    raise ValueError(f"could not draw {n} distinct artist names")


if __name__ == "__main__":
    for written in write_demo_sample().values():
        print(written)
