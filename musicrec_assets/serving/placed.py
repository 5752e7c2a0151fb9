"""Artists nobody had rated when a version was trained, placed in its ranking model's space by
their tags (:class:`~musicrec_assets.model.tag_mapping.TagFactors`, saved beside the version's
models), and how their audiences are ranked: the one place ``artist_top_users``, fold-in and
the served model take both from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musicrec_assets.model.factors import spread_scaled
from musicrec_assets.model.tag_mapping import TagFactors
from musicrec_assets.serving import topn


@dataclass(frozen=True)
class PlacedArtists:
    """The placed artists (``artist_factors`` rows with ``source`` 'tags') of one version."""

    ids: np.ndarray  # (n,) str
    vectors: np.ndarray  # (n, k): their ranking vectors (zero-padded past k is harmless)
    # their audiences rank users by their scores in units of each user's spread
    # (TagFactors.audience_by_spread)
    by_spread: bool = False

    @classmethod
    def of(cls, loaded: tuple[np.ndarray, TagFactors] | None) -> PlacedArtists | None:
        """Those of :meth:`TagFactors.load`'s answer; None where the version placed none."""
        if loaded is None or not loaded[1].passed or not len(loaded[0]):
            return None
        ids, placed = loaded
        return cls(ids.astype(str), placed.vectors["ranking"], placed.audience_by_spread)

    @classmethod
    def of_version(cls, folder: str | Path) -> PlacedArtists | None:
        """The artists a version placed (its ``tag_factors.*``); None where it placed none."""
        return cls.of(TagFactors.load(folder))

    def top_users(
        self, rows, user_vectors: np.ndarray, item_vectors: np.ndarray, n: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` best of ``user_vectors`` (rows of ``topn.top_n_users``) for the placed
        artists ``rows``, as their audiences are ranked (nobody listens to them yet);
        ``item_vectors`` are the trained artists', which a user's spread is over."""
        audience = spread_scaled(user_vectors, item_vectors) if self.by_spread else user_vectors
        theirs = self.vectors[rows, : user_vectors.shape[1]]
        return topn.top_n_users(theirs, audience, n=n)
