"""Synthetic listeners, artists and ratings, written in the landing JSON layout.

Three generators, all deterministic from a seed:

``generate_world`` (`world`)
    A small in-memory world with planted taste structure: the bundled demo sample, written
    with ``write_landing`` / ``write_demo_sample``.
``write_bulk_ratings`` (`bulk`)
    A large ratings JSON Lines file for benchmarks, streamed chunk by chunk, with
    ``write_catalogue`` for the users and artists it refers to.
``generate_lastfm360k_shape`` (`lastfm360k`)
    A play-count set shaped like Last.fm-360K (users × artists × rows, long tail, each
    listener leaning to one genre), streamed into a gzip landing folder;
    ``lastfm360k_play_matrix`` builds the same distribution in memory.

Names and ids come from `names`, the random draws the generators share from `sampling`.
Files are written through `musicrec_assets.warehouse.landing`, so each appears in the landing
folder only once complete.

Regenerate the bundled sample with ``python -m musicrec_assets.datasets.synthetic``.
"""

from musicrec_assets.datasets.synthetic.bulk import Catalogue, write_bulk_ratings, write_catalogue
from musicrec_assets.datasets.synthetic.lastfm360k import (
    LASTFM360K_ARTISTS,
    LASTFM360K_GENRES,
    LASTFM360K_ROWS,
    LASTFM360K_TASTE_SHARE,
    LASTFM360K_USERS,
    generate_lastfm360k_shape,
    lastfm360k_play_matrix,
)
from musicrec_assets.datasets.synthetic.names import (
    ADJECTIVES,
    ARTIST_NAME_TEMPLATES,
    ASCII_FALLBACKS,
    ENSEMBLES,
    FIRST_NAMES,
    LAST_NAMES,
    MAX_NAME_ATTEMPTS,
    NOUNS,
    PLACES,
    PLURAL_NOUNS,
    PREFIXES,
    SYLLABLES,
)
from musicrec_assets.datasets.synthetic.sampling import EPOCH_2006, EPOCH_2025, ArtistDraw
from musicrec_assets.datasets.synthetic.world import (
    GENRES,
    SAMPLE_DATA_DIR,
    LandingFormat,
    SampleWorld,
    generate_world,
    write_demo_sample,
    write_landing,
)

__all__ = [
    "ADJECTIVES",
    "ARTIST_NAME_TEMPLATES",
    "ASCII_FALLBACKS",
    "ENSEMBLES",
    "EPOCH_2006",
    "EPOCH_2025",
    "FIRST_NAMES",
    "GENRES",
    "LASTFM360K_ARTISTS",
    "LASTFM360K_GENRES",
    "LASTFM360K_ROWS",
    "LASTFM360K_TASTE_SHARE",
    "LASTFM360K_USERS",
    "LAST_NAMES",
    "MAX_NAME_ATTEMPTS",
    "NOUNS",
    "PLACES",
    "PLURAL_NOUNS",
    "PREFIXES",
    "SAMPLE_DATA_DIR",
    "SYLLABLES",
    "ArtistDraw",
    "Catalogue",
    "LandingFormat",
    "SampleWorld",
    "generate_lastfm360k_shape",
    "generate_world",
    "lastfm360k_play_matrix",
    "write_bulk_ratings",
    "write_catalogue",
    "write_demo_sample",
    "write_landing",
]
