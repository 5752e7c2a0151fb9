"""Artists nobody has played yet, placed from their tags: the cold-artist protocol on Last.fm-2k.

1. **Cold artists** (:mod:`musicrec_assets.evaluation.cold_artists`): 10% of the artists that
   have tags and listeners are held out with all their interactions (seed 42). The ranking
   model (implicit ALS) is chosen on the rest by the pipeline's own search
   (``tuning.cross_validate`` over ``tuning.ranking_space``, 3-fold CV on NDCG@10, budget
   ``--trials``/``--seconds``), then fitted on it; the tag mapping
   (:mod:`musicrec_assets.model.tag_mapping`: TF-IDF tag vectors, ridge, λ by leave-one-artist-
   out CV) gives the held-out artists factors from their tags alone. (a) per held-out artist,
   every user ranked: ROC AUC, NDCG@10, NDCG@50 against its real listeners; (b) per user with
   a held-out play, the held-out artists ranked: AUC, NDCG@10. Beside: tag popularity, the
   mean artist (no tags), random, and (a) most active users; then the gate's margins.
2. **Similar artists judged by tags**: the share of an artist's top 10 similar artists that
   share one of its top 5 tags, for the published ``similar_items`` (cosine of the ranking
   factors, shrunk by support), implicit's ``similar_items`` of the same ALS and of item-kNN
   (cosine), and a random pick; over artists with tags, and over those with fewer than 5
   listeners; and how many neighbour lists are decided by one listener (a rank-1 neighbour
   whose only common listener is one user).

Tags are read from ``tags.dat``/``user_taggedartists.dat`` (weight: listeners who applied the
tag), normalised as the ingest does (lower case, white space collapsed). Skipped with a
message when ``../shared/datasets`` lacks Last.fm-2k.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from common import LASTFM_DIR, load_lastfm_plays, print_environment, print_table
from scipy.sparse import csr_matrix

from musicrec_assets.evaluation.cold_artists import (
    ARTISTS_FOR_USER,
    MAPPING,
    USERS_FOR_ARTIST,
    evaluate_cold_artists,
    gate_margins,
    mapping_wins,
)
from musicrec_assets.evaluation.tuning import Budget, cross_validate, ranking_space
from musicrec_assets.model.fitters import fit_local, ranking_base_params


def load_lastfm_tags(artist_ids: np.ndarray) -> csr_matrix:
    """artists (the rows of ``artist_ids``) × tags: how many listeners applied each tag."""
    names = pd.read_csv(LASTFM_DIR / "tags.dat", sep="\t", encoding="latin-1", quoting=3)
    names["tag"] = names["tagValue"].map(lambda text: " ".join(str(text).lower().split()))
    applied = pd.read_csv(LASTFM_DIR / "user_taggedartists.dat", sep="\t", dtype={"artistID": str})
    applied = applied.merge(names[["tagID", "tag"]], on="tagID")
    counts = applied.groupby(["artistID", "tag"]).userID.nunique().reset_index()
    row_of = pd.Series(np.arange(len(artist_ids)), index=artist_ids)
    counts = counts[counts.artistID.isin(row_of.index)]
    tag_codes, _ = pd.factorize(counts.tag)
    return csr_matrix(
        (counts.userID.to_numpy(np.float64), (row_of[counts.artistID].to_numpy(), tag_codes)),
        shape=(len(artist_ids), tag_codes.max() + 1),
    )


def tuned_fit(trials: int, seconds: float, seed: int):
    """Fits the ranking model on a training matrix with the settings its own CV search chose."""
    chosen = {}

    def fit(train: csr_matrix):
        base = ranking_base_params("implicit", iterations=15, seed=seed)
        search = cross_validate(
            train,
            base,
            ranking_space("implicit", {}),
            seed=seed,
            budget=Budget(trials=trials, seconds=seconds),
        )
        chosen["params"] = search.best.params
        chosen["trials"] = len(search.trials)
        return fit_local(train, search.best.params)

    return fit, chosen


def cold_artist_table(plays: csr_matrix, tags: csr_matrix, args) -> None:
    fit, chosen = tuned_fit(args.trials, args.seconds, args.seed)
    started = time.perf_counter()
    result = evaluate_cold_artists(plays, tags, fit, share=0.1, seed=args.seed)
    seconds = time.perf_counter() - started
    params = chosen["params"]
    mapping = result.mapping
    print(
        f"\nranking model chosen by {chosen['trials']} CV trials on the training part: rank "
        f"{params.rank}, λ {params.regularization:.3g}, {params.confidence} α {params.alpha:.3g}"
    )
    print(
        f"tag mapping: {mapping.vocabulary.size} tags (on ≥ 2 artists), fitted on "
        f"{mapping.n_artists} artists, λ {mapping.regularization:.3g} by leave-one-artist-out "
        f"CV{' (on the edge of its grid)' if mapping.on_edge else ''}; protocol {seconds:.1f} s"
    )
    a, b = result.scores[USERS_FOR_ARTIST], result.scores[ARTISTS_FOR_USER]
    rows = []
    for method, metrics in a.items():
        other = b.get(method, {})
        rows.append(
            [
                method,
                f"{metrics['auc']:.4f}",
                f"{metrics['ndcg_at_10']:.4f}",
                f"{metrics['ndcg_at_50']:.4f}",
                f"{other['auc']:.4f}" if other else "—",
                f"{other['ndcg_at_10']:.4f}" if other else "—",
            ]
        )
    print_table(
        f"Cold artists, Last.fm-2k: {result.n_held_out} held-out artists (10% of those with "
        f"tags and listeners), (b) over {result.n_users_b} users",
        ["method", "(a) AUC", "(a) NDCG@10", "(a) NDCG@50", "(b) AUC", "(b) NDCG@10"],
        rows,
    )
    margins = ", ".join(f"{name} {margin:+.1f}" for name, margin in gate_margins(result).items())
    print(
        f"gate: the {MAPPING}'s AUC lead in standard errors of the paired differences "
        f"({margins}); passes (all > 2): {mapping_wins(result)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12, help="ranking-model search trials")
    parser.add_argument("--seconds", type=float, default=60.0, help="ranking-model search time")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    print_environment("bench_cold_artists: tags mapped into the factor space (issue 24)")
    loaded = load_lastfm_plays()
    if loaded is None:
        return
    plays, _user_ids, artist_ids = loaded
    tags = load_lastfm_tags(artist_ids)
    print(
        f"Last.fm-2k: {plays.shape[0]} users, {plays.shape[1]} artists, {plays.nnz} plays; "
        f"{int((tags.getnnz(axis=1) > 0).sum())} artists with tags, {tags.shape[1]} tags"
    )
    cold_artist_table(plays, tags, args)


if __name__ == "__main__":
    main()
