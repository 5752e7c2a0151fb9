"""The cold-artist protocol: how well an artist nobody has played yet is placed from its tags.

1. Hold out ``share`` (10%) of the artists that have tags and listeners, with all their
   interactions (a seeded draw); the rest is the training matrix.
2. Fit the ranking model on it, and the tag mapping (:mod:`musicrec_assets.model.tag_mapping`)
   from the training artists' tags to their factors; the held-out artists get factors from
   their tags alone.
3. Score, against who really played each held-out artist:

   (a) *users for an artist* (who to promote it to): per held-out artist, every user ranked
       by ``u · v̂``; ROC AUC over all users, NDCG@10 and NDCG@50 (binary relevance);
       averaged over the held-out artists.
   (b) *artists for a user*: per user with a held-out play, the held-out artists ranked;
       AUC and NDCG@10, averaged over those users.

Beside the mapping, the same scores of:

- ``tag popularity``: (a) a user's affinity to the artist's tags: the user's training
  artists' tag vectors summed (how much they played artists sharing the tags), dotted with
  the artist's; (b) the artist's tags' popularity: its tag vector dotted with the tag
  vectors summed over every training interaction (one order for every user);
- ``mean artist (no tags)``: every held-out artist given the mean factor row of the training
  artists, what the mapping falls back to when tags say nothing ((b): one score for all);
- ``random``: seeded uniform scores;
- ``most active users`` ((a) only): users ranked by their number of training artists, which
  any score that ignores the artist already gets.

:func:`mapping_wins` is the gate the published tag factors pass: on (a) and on (b), by ROC
AUC (the whole ranking, steadier than the top 10 when an artist has one or two listeners),
the mapping must beat tag popularity and the mean artist, each by more than two standard
errors of the paired per-query differences: a mapping of tags that carry nothing scores
about as the mean artist does, and chance alone should not publish it. numpy/scipy only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import csr_matrix, vstack

from musicrec_assets.model.factors import FactorModel, spread_scaled
from musicrec_assets.model.tag_mapping import (
    TagFactors,
    TagMapping,
    fit_tag_mapping,
    fit_tag_mappings,
    tag_vectors,
)

MAPPING = "tag mapping"
# (a) only: each user's scores in units of their spread (factors.spread_scaled), which leaves
# every user's own order, so (b), as it was
MAPPING_BY_SPREAD = "tag mapping, users by their spread"
TAG_POPULARITY = "tag popularity"
RANDOM = "random"
MEAN_ARTIST = "mean artist (no tags)"
MOST_ACTIVE = "most active users"
USERS_FOR_ARTIST = "a"  # (a) users ranked per held-out artist
ARTISTS_FOR_USER = "b"  # (b) held-out artists ranked per user
KS = (10, 50)
QUERY_CHUNK = 2048


@dataclass(frozen=True)
class ColdArtistSplit:
    held_out: np.ndarray  # artist columns held out, sorted
    train: csr_matrix  # the interactions with the held-out columns emptied
    test: csr_matrix  # the held-out artists' interactions (users × all artists)


def cold_artist_split(
    interactions: csr_matrix, tags: csr_matrix, share: float = 0.1, seed: int = 42
) -> ColdArtistSplit:
    """Hold out ``share`` of the artists with both tags and listeners, with all their
    interactions."""
    interactions = csr_matrix(interactions)
    candidates = np.flatnonzero(
        (csr_matrix(tags).getnnz(axis=1) > 0) & (interactions.getnnz(axis=0) > 0)
    )
    n_held = max(1, round(share * len(candidates)))
    if len(candidates) < 2:
        raise ValueError("the cold-artist protocol needs at least 2 artists with tags and plays")
    held_out = np.sort(np.random.default_rng(seed).choice(candidates, n_held, replace=False))
    is_held = np.zeros(interactions.shape[1], dtype=bool)
    is_held[held_out] = True
    coo = interactions.tocoo()
    kept = ~is_held[coo.col]

    def part(mask: np.ndarray) -> csr_matrix:
        return csr_matrix(
            (coo.data[mask], (coo.row[mask], coo.col[mask])), shape=interactions.shape
        )

    return ColdArtistSplit(held_out=held_out, train=part(kept), test=part(~kept))


@dataclass
class ColdArtistResult:
    """Scores by method and metric, per task (``"a"``, ``"b"``), and what was fitted."""

    scores: dict[str, dict[str, dict[str, float]]]  # task -> method -> metric -> value
    # task -> method -> the AUC of each query (the same queries, in order, for every method)
    query_aucs: dict[str, dict[str, np.ndarray]]
    n_held_out: int
    n_users_b: int
    mapping: TagMapping
    fit_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def evaluate_cold_artists(
    interactions: csr_matrix,
    tags: csr_matrix,
    fit: Callable[[csr_matrix], FactorModel],
    share: float = 0.1,
    seed: int = 42,
    min_tag_artists: int = 2,
) -> ColdArtistResult:
    """The protocol of the module docstring on ``interactions`` (users × artists, plays or
    ratings: every stored entry is a listener) and ``tags`` (artists × tags, raw weights).
    ``fit`` fits the ranking model (no biases: ``u · v`` is its score)."""
    split = cold_artist_split(interactions, tags, share, seed)
    model = fit(split.train)
    user_factors = np.asarray(model.user_factors, dtype=np.float64)
    item_factors = np.asarray(model.item_factors, dtype=np.float64)
    tags = csr_matrix(tags)
    fit_rows = np.flatnonzero((tags.getnnz(axis=1) > 0) & (split.train.getnnz(axis=0) > 0))
    mapping = fit_tag_mapping(tags, item_factors, fit_rows, user_factors, min_tag_artists)
    cold = split.held_out
    mapped = mapping.factors(tags[cold]).astype(np.float64)

    seen = _binary(split.train)
    truth = _binary(split.test)[:, cold]  # users × held-out artists
    vectors = tag_vectors(tags, mapping.vocabulary)
    profiles = seen @ vectors  # users × tags: the tags of what each user played
    cold_vectors = vectors[cold]
    affinity = (profiles @ cold_vectors.T).toarray()  # users × held-out
    popularity = np.asarray(profiles.sum(axis=0)).ravel()
    rng = np.random.default_rng(seed + 1)
    activity = np.diff(seen.indptr).astype(np.float64)

    mean_artist = user_factors @ item_factors[fit_rows].mean(axis=0)
    user_scores = {
        MAPPING: user_factors @ mapped.T,
        MAPPING_BY_SPREAD: spread_scaled(user_factors, item_factors[fit_rows]) @ mapped.T,
        TAG_POPULARITY: affinity,
        MEAN_ARTIST: np.repeat(mean_artist[:, None], len(cold), axis=1),
        RANDOM: rng.random(truth.shape),
        MOST_ACTIVE: np.repeat(activity[:, None], len(cold), axis=1),
    }
    # (a): queries are the held-out artists, candidates every user
    scores_a = {
        name: ranking_scores(matrix.T, csr_matrix(truth.T)) for name, matrix in user_scores.items()
    }
    # (b): queries are the users with a held-out play, candidates the held-out artists
    users_b = np.flatnonzero(truth.getnnz(axis=1) > 0)
    artist_scores = {
        MAPPING: user_scores[MAPPING][users_b],
        TAG_POPULARITY: np.repeat((cold_vectors @ popularity)[None, :], len(users_b), axis=0),
        MEAN_ARTIST: np.repeat(mean_artist[users_b, None], len(cold), axis=1),
        RANDOM: rng.random((len(users_b), len(cold))),
    }
    scores_b = {
        name: ranking_scores(matrix, truth[users_b], ks=(10,))
        for name, matrix in artist_scores.items()
    }
    tasks = {USERS_FOR_ARTIST: scores_a, ARTISTS_FOR_USER: scores_b}
    return ColdArtistResult(
        scores={
            task: {name: means for name, (means, _) in by_method.items()}
            for task, by_method in tasks.items()
        },
        query_aucs={
            task: {name: aucs for name, (_, aucs) in by_method.items()}
            for task, by_method in tasks.items()
        },
        n_held_out=len(cold),
        n_users_b=len(users_b),
        mapping=mapping,
    )


GATE_BASELINES = (TAG_POPULARITY, MEAN_ARTIST)
# a standard error of fewer queries says little: so few held-out artists (or users with a
# held-out play) judge nothing, and the gate withholds
MIN_GATE_QUERIES = 20


def mapping_wins(result: ColdArtistResult, z: float = 2.0) -> bool:
    """The gate: on (a) and (b), each over at least :data:`MIN_GATE_QUERIES` queries, the
    mapping's mean AUC beats each of :data:`GATE_BASELINES` by more than ``z`` standard errors
    of the per-query differences."""
    enough = all(len(aucs[MAPPING]) >= MIN_GATE_QUERIES for aucs in result.query_aucs.values())
    return enough and all(margin > z for margin in gate_margins(result).values())


def gate_margins(result: ColdArtistResult) -> dict[str, float]:
    """``"<task> vs <baseline>"``: the mapping's mean AUC lead in standard errors of the
    per-query differences (inf when they are all equal and positive, 0 when all are 0)."""
    margins = {}
    for task, aucs in result.query_aucs.items():
        for baseline in GATE_BASELINES:
            difference = aucs[MAPPING] - aucs[baseline]
            error = difference.std(ddof=1) / np.sqrt(len(difference)) if len(difference) > 1 else 0
            mean = float(difference.mean()) if len(difference) else 0.0
            margins[f"{task} vs {baseline}"] = (
                mean / error if error > 0 else (np.inf if mean > 0 else 0.0)
            )
    return margins


def ranking_scores(
    scores: np.ndarray, relevant: csr_matrix, ks: tuple[int, ...] = KS
) -> tuple[dict[str, float], np.ndarray]:
    """Mean ROC AUC and NDCG@k over the rows (queries) of ``scores`` (queries × candidates)
    with at least one relevant candidate (``relevant``'s stored entries), and the AUC of each
    of those queries. AUC counts ties as half (average ranks); NDCG breaks ties by the lower
    candidate index, as the tables do."""
    # imported here: scipy.stats takes about a second to import, which every Dagster step
    # process (this module is part of the serving assets) would pay otherwise
    from scipy.stats import rankdata

    relevant = csr_matrix(relevant)
    rows = np.flatnonzero(relevant.getnnz(axis=1) > 0)
    n_candidates = scores.shape[1]
    aucs, ndcgs = [], {k: [] for k in ks}
    discounts = 1.0 / np.log2(np.arange(2, n_candidates + 2))
    for start in range(0, len(rows), QUERY_CHUNK):
        chunk = rows[start : start + QUERY_CHUNK]
        block = np.asarray(scores[chunk], dtype=np.float64)
        is_relevant = relevant[chunk].toarray() > 0
        n_pos = is_relevant.sum(axis=1)
        n_neg = n_candidates - n_pos
        ranks = rankdata(block, axis=1)  # 1 = lowest score
        rank_sum = np.where(is_relevant, ranks, 0.0).sum(axis=1)
        auc = (rank_sum - n_pos * (n_pos + 1) / 2) / np.maximum(n_pos * n_neg, 1)
        aucs.append(np.where(n_neg > 0, auc, 1.0))
        # stable sort of the negated scores: ties go to the lower index
        order = np.argsort(-block, axis=1, kind="stable")
        hits = np.take_along_axis(is_relevant, order, axis=1)
        for k in ks:
            top = min(k, n_candidates)
            dcg = hits[:, :top] @ discounts[:top]
            ideal = np.cumsum(discounts[:top])[np.minimum(n_pos, top) - 1]
            ndcgs[k].append(dcg / ideal)
    query_aucs = np.concatenate(aucs) if aucs else np.zeros(0)
    result = {"auc": float(np.mean(query_aucs)) if aucs else float("nan")}
    for k in ks:
        result[f"ndcg_at_{k}"] = float(np.mean(np.concatenate(ndcgs[k]))) if aucs else float("nan")
    result["queries"] = float(len(rows))
    return result, query_aucs


def _binary(matrix: csr_matrix) -> csr_matrix:
    binary = csr_matrix(matrix, copy=True)
    binary.data = np.ones_like(binary.data, dtype=np.float64)
    binary.eliminate_zeros()
    return binary


def tags_to_factors(
    models: dict[str, FactorModel],
    interactions: csr_matrix,
    known_tags: csr_matrix,
    new_tags: csr_matrix,
    fit: Callable[[csr_matrix], FactorModel],
    min_tag_artists: int = 2,
    seed: int = 42,
) -> TagFactors:
    """Vectors for artists known only by their tags (``new_tags``' rows), one per model role,
    each the mapping of their tags into that model's artist vectors (biases folded in, as
    ``artist_factors`` publishes them), fitted on the models' artists (``known_tags``' rows,
    the columns of ``interactions``) that have listeners and tags. Published only when the
    cold-artist protocol on ``interactions`` (``fit`` refits the ranking model without the
    held-out artists) passes :func:`mapping_wins`; the columns of the two tag matrices are
    the same tags."""
    nothing = np.zeros(0, dtype=np.int64)
    try:
        result = evaluate_cold_artists(
            interactions, known_tags, fit, seed=seed, min_tag_artists=min_tag_artists
        )
    except ValueError as error:  # too few tagged artists, or no tag on two of them
        return TagFactors(False, f"no cold-artist protocol: {error}", {}, {}, nothing, {}, {})
    margins = gate_margins(result)
    if not mapping_wins(result):
        lost = ", ".join(f"{name} {margin:+.1f}" for name, margin in margins.items())
        queries = min(len(aucs[MAPPING]) for aucs in result.query_aucs.values())
        reason = (
            f"withheld: the mapping does not beat its baselines by 2 standard errors ({lost})"
            if queries >= MIN_GATE_QUERIES
            else f"withheld: {queries} queries are too few to judge the mapping "
            f"(at least {MIN_GATE_QUERIES})"
        )
        return TagFactors(False, reason, margins, result.scores, nothing, {}, {})
    all_tags = csr_matrix(vstack([csr_matrix(known_tags), csr_matrix(new_tags)]))
    n_known = known_tags.shape[0]
    listened = np.flatnonzero(
        (csr_matrix(known_tags).getnnz(axis=1) > 0) & (csr_matrix(interactions).getnnz(axis=0) > 0)
    )
    mappings = fit_tag_mappings(
        all_tags,
        {role: (model.item_vectors(), model.user_vectors()) for role, model in models.items()},
        listened,
        min_tag_artists,
    )
    new = all_tags[n_known:]
    vectors, regularization, rows = {}, {}, nothing
    for role, mapping in mappings.items():
        rows = np.flatnonzero(mapping.has_tags(new))
        vectors[role] = mapping.factors(new[rows])
        regularization[role] = mapping.regularization
    reason = (
        f"published: the mapping beats tag popularity and the mean artist ({len(rows)} artists)"
    )
    return TagFactors(
        True,
        reason,
        margins,
        result.scores,
        rows,
        vectors,
        regularization,
        audience_by_spread=audience_by_spread(result),
    )


def audience_by_spread(result: ColdArtistResult) -> bool:
    """Whether placed artists' audiences should rank users by their scores in units of their
    own spread: where that ranked the held-out artists' real listeners higher in (a), by
    NDCG@10. Where every listener plays about as many artists (Last.fm-2k) it does; where how
    much a user rates says who rates next (FilmTrust) the plain score does."""
    scores = result.scores[USERS_FOR_ARTIST]
    return scores[MAPPING_BY_SPREAD]["ndcg_at_10"] > scores[MAPPING]["ndcg_at_10"]
