"""Large ratings files for benchmarks, and the users and artists they refer to.

The rows are built as numpy chunks, wrapped as Arrow record batches, and formatted by DuckDB's
``COPY ... (FORMAT json)`` (formatting millions of lines in Python would dominate the run
time) while a second thread appends, and gzips if asked, the previous chunk. Files appear in
the landing folder only once complete (`warehouse.landing.open_for_writing`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from musicrec_assets.datasets.synthetic.names import _artist_names, _random_hex_ids, _random_uuids
from musicrec_assets.datasets.synthetic.sampling import (
    EPOCH_2006,
    EPOCH_2025,
    _heavy_tailed_plays,
    _per_user_counts,
    _popular_draw,
    _user_artist_pairs,
    _zipf_popularity,
)
from musicrec_assets.warehouse.landing import landing_path, open_for_writing, write_json_records


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
        "users": landing_path(out_dir, "users", "users.jsonl", gzip),
        "artists": landing_path(out_dir, "artists", "artists.jsonl", gzip),
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


def _bulk_catalogue(rng: np.random.Generator, n_users: int, n_artists: int) -> Catalogue:
    return Catalogue(
        user_ids=_random_hex_ids(rng, n_users),
        artist_ids=_random_uuids(rng, n_artists),
        artist_names=_artist_names(rng, n_artists),
    )


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
        open_for_writing(path) as sink,
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
