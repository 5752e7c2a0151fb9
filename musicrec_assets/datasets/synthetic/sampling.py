"""Random draws the generators share: rows per user, popularity, distinct (user, artist) pairs.

All take the caller's seeded ``numpy.random.Generator``; none keeps state of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

EPOCH_2006 = 1_136_073_600  # 2006-01-01T00:00:00Z
EPOCH_2025 = 1_735_689_600  # 2025-01-01T00:00:00Z

ArtistDraw = Callable[[np.ndarray], np.ndarray]  # user index of each draw → artist index


def _popular_draw(rng: np.random.Generator, popularity: np.ndarray) -> ArtistDraw:
    """Every draw from all artists, in proportion to ``popularity``."""
    cdf = np.cumsum(popularity)
    # Rounding can leave the last value just under 1; a draw above it would fall
    # past the last artist.
    cdf[-1] = 1.0
    return lambda users: np.searchsorted(cdf, rng.random(len(users)), side="right")


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
