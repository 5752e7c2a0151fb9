"""Tuning, judged as a user receives it: `musicrec run` with default settings, its published
tables scored black box on a held-out part, beside peers tuned the ordinary way.

For each data set (FilmTrust's half-star ratings and Last.fm-2k's play counts, each skipped
with a message when ``../shared/datasets`` lacks it, and two explicit-ratings worlds of our
generator: one of the original study's size, 300 users × 10,000 artists × 30,000 ratings, and
one with ten times the users, at other taste and noise settings than the bundled sample's):

1. a fifth of each listener's ratings is held out (seeded), the rest written as a landing folder;
2. ``musicrec run`` in a fresh home with default settings (its whole budget: every model's
   search, the gate, the tables), timed;
3. the published ``user_recommendations`` and the ``rating`` factors are read with SQL and
   scored on the held-out part: NDCG@10 on any held-out artist, on the liked ones (rated at or
   above the listener's training mean), the share of the top 10 that the published rating
   model predicts below the listener's mean, and RMSE;
4. the peers are fitted on the same training part, each tuned by its own grid on a validation
   split of that part (the ordinary way, not our search): ``implicit``'s ALS (rank, λ, α, and
   binary/rating or bm25/log1p confidence), ``implicit``'s item-kNN (K, cosine/bm25), most
   popular, and for ratings the bias model μ + b_u + b_i (its λ by the same validation).

Goals (issue 21): the published list at least the tuned ``implicit`` ALS's NDCG@10 (any and
liked), at most 10% predicted dislikes in it, and an RMSE below the bias model's.

    .venv/bin/python benchmarks/bench_tune.py [--only NAME ...]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from common import FILMTRUST_DIR, LASTFM_DIR, REPO_ROOT, print_environment, print_table
from implicit.als import AlternatingLeastSquares
from implicit.nearest_neighbours import BM25Recommender, CosineRecommender, bm25_weight
from scipy.sparse import csr_matrix
from threadpoolctl import threadpool_limits

from musicrec_assets.datasets.synthetic.world import generate_world

MUSICREC = str(Path(sys.executable).parent / "musicrec")
SEED = 0
K = 10
HELD_OUT_SHARE = 5  # every fifth rating of a listener, in a seeded order

# the peers' grids: what a user of each library would try first
ALS_GRID = {
    "factors": (32, 64, 128),
    "regularization": (0.1, 1.0, 10.0, 100.0),
    "alpha": (1.0, 10.0),
}
ALS_SCHEMES = {"ratings": ("binary", "rating"), "plays": ("bm25", "log1p")}
KNN_GRID = {"K": (20, 50, 100, 200, 500, 1000), "similarity": ("cosine", "bm25")}
BIAS_LAMBDAS = (1.0, 3.0, 10.0, 30.0, 100.0)


def filmtrust() -> tuple[pd.DataFrame, str] | None:
    path = FILMTRUST_DIR / "ratings.txt"
    if not path.is_file():
        print(f"\n(FilmTrust not found at {FILMTRUST_DIR}: skipped)")
        return None
    frame = pd.read_csv(path, sep=" ", names=["user_id", "artist_id", "value"], dtype=str)
    frame["value"] = frame["value"].astype(float)
    return frame.drop_duplicates(["user_id", "artist_id"], keep="last"), "ratings"


def lastfm() -> tuple[pd.DataFrame, str] | None:
    path = LASTFM_DIR / "user_artists.dat"
    if not path.is_file():
        print(f"\n(Last.fm-2k not found at {LASTFM_DIR}: skipped)")
        return None
    frame = pd.read_csv(path, sep="\t", dtype={"userID": str, "artistID": str})
    frame.columns = ["user_id", "artist_id", "value"]
    return frame, "plays"


def generated(**shape) -> tuple[pd.DataFrame, str]:
    ratings = generate_world(**shape).ratings
    return ratings[["user_id", "artist_id", "rating"]].rename(columns={"rating": "value"}), (
        "ratings"
    )


DATASETS = {
    "FilmTrust": filmtrust,
    "Last.fm-2k": lastfm,
    "seed-sized world": lambda: generated(seed=7, taste_std=1.0, noise_std=0.4),
    "10× users world": lambda: generated(
        seed=11, n_users=3000, n_artists=10_000, n_ratings=300_000, taste_std=0.9, noise_std=0.5
    ),
}


def hold_out(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training part, held-out part): every fifth of each listener's ratings in a seeded
    order; held-out pairs of a listener or an artist the training part lacks are dropped (no
    model knows them)."""
    shuffled = frame.sample(frac=1.0, random_state=SEED)
    held = shuffled.groupby("user_id").cumcount() % HELD_OUT_SHARE == 0
    train, test = shuffled[~held], shuffled[held]
    known = test["artist_id"].isin(set(train["artist_id"])) & test["user_id"].isin(
        set(train["user_id"])
    )
    return train, test[known]


def write_landing(train: pd.DataFrame, kind: str, landing: Path) -> None:
    value = "rating" if kind == "ratings" else "plays"
    records = {
        "users": ({"id": user} for user in train["user_id"].unique()),
        "artists": ({"id": artist} for artist in train["artist_id"].unique()),
        "ratings": (
            {"user_id": u, "artist_id": a, value: v}
            for u, a, v in train[["user_id", "artist_id", "value"]].itertuples(index=False)
        ),
    }
    for entity, rows in records.items():
        (landing / entity).mkdir(parents=True)
        with open(landing / entity / f"{entity}.jsonl", "w") as file:
            file.writelines(json.dumps(row) + "\n" for row in rows)


def run_musicrec(home: Path) -> tuple[float, str | None, list[str]]:
    """Seconds of `musicrec run` with default settings in ``home``; the reason it gave when it
    published nothing (its gate failed), else None; what it said of the models it chose."""
    started = time.perf_counter()
    result = subprocess.run(
        [MUSICREC, "run", "--home", str(home)],
        capture_output=True,
        text=True,
        env={**os.environ, "MUSICREC_HOME": str(home)},
        cwd=REPO_ROOT,
    )
    seconds = time.perf_counter() - started
    said = [
        line
        for line in result.stdout.splitlines()
        if line.startswith(("model musicrec-als", "chosen settings", "verdict:"))
    ]
    if result.returncode == 0:
        return seconds, None, said
    refusals = [line for line in said if "challenger:" in line]
    if not refusals:
        raise RuntimeError(f"musicrec run failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return seconds, refusals[0].partition("challenger: ")[2], said


class Published:
    """What the home's tables publish: the lists, and the rating model's factors (ratings)."""

    def __init__(self, home: Path):
        with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
            lists = con.execute(
                "SELECT user_id, artist_id FROM user_recommendations ORDER BY user_id, rank"
            ).df()
            factors = {
                (model, side): con.execute(
                    f"SELECT {side}_id AS id, factors FROM {side}_factors WHERE model = ?",
                    [model],
                ).df()
                for model in ("rating", "ranking")
                for side in ("user", "artist")
            }
        self.lists = lists.groupby("user_id")["artist_id"].agg(list).to_dict()
        self.factors = {
            side: dict(zip(frame["id"], map(np.asarray, frame["factors"]), strict=True))
            for (model, side), frame in factors.items()
            if model == "rating"
        }
        self.frames = factors

    def scores(self, model: str, split: Split) -> np.ndarray:
        """Every listener × artist score of the published ``model`` ('ranking', 'rating'), in
        the split's order."""
        user, artist = self.frames[(model, "user")], self.frames[(model, "artist")]
        users = np.zeros((len(split.users), len(user["factors"].iloc[0])), np.float32)
        users[split.users.get_indexer(user["id"])] = np.stack(user["factors"])
        artists = np.zeros((len(split.artists), users.shape[1]), np.float32)
        artists[split.artists.get_indexer(artist["id"])] = np.stack(artist["factors"])
        return users @ artists.T

    def predict(self, users, artists) -> np.ndarray:
        """The published rating model's predictions (one inner product, as its SQL reads)."""
        user_factors, artist_factors = self.factors["user"], self.factors["artist"]
        return np.array(
            [user_factors[u] @ artist_factors[a] for u, a in zip(users, artists, strict=True)]
        )


class Split:
    """The training part as a matrix, and the held-out part as per-listener sets."""

    def __init__(self, train: pd.DataFrame, test: pd.DataFrame, kind: str):
        self.kind = kind
        self.users = pd.Index(sorted(train["user_id"].unique()))
        self.artists = pd.Index(sorted(train["artist_id"].unique()))
        self.matrix = csr_matrix(
            (
                train["value"].to_numpy(float),
                (
                    self.users.get_indexer(train["user_id"]),
                    self.artists.get_indexer(train["artist_id"]),
                ),
            ),
            shape=(len(self.users), len(self.artists)),
        )
        self.means = train.groupby("user_id")["value"].mean()
        self.test = test
        self.any = test.groupby("user_id")["artist_id"].agg(set).to_dict()
        liked = test[test["value"] >= test["user_id"].map(self.means)]
        self.liked = liked.groupby("user_id")["artist_id"].agg(set).to_dict()


def ndcg_at_k(lists: dict[str, list], relevant: dict[str, set]) -> float:
    """Mean NDCG@K over the listeners with relevant held-out artists (binary gains)."""
    discounts = 1 / np.log2(np.arange(2, K + 2))
    scores = []
    for user, wanted in relevant.items():
        listed = lists.get(user, [])[:K]
        gains = np.array([artist in wanted for artist in listed], dtype=float)
        ideal = discounts[: min(len(wanted), K)].sum()
        scores.append(float(gains @ discounts[: len(gains)]) / ideal)
    return float(np.mean(scores))


def dislike_share(lists: dict[str, list], split: Split, published: Published) -> float:
    pairs = [(u, a) for u, listed in lists.items() for a in listed[:K]]
    users, artists = zip(*pairs, strict=True)
    predicted = published.predict(users, artists)
    return float(np.mean(predicted < split.means.loc[list(users)].to_numpy()))


# the peers: each a function of a training matrix and settings to top-K artist indices per user


def _confidence(matrix: csr_matrix, scheme: str, alpha: float) -> csr_matrix:
    weighted = matrix.copy().astype(np.float32)
    if scheme == "binary":
        weighted.data[:] = 1.0
    elif scheme == "log1p":
        weighted.data = np.log1p(weighted.data)
    elif scheme == "bm25":
        weighted = bm25_weight(weighted, K1=100, B=0.8).tocsr().astype(np.float32)
    weighted.data *= alpha
    return weighted


def top_k_als(matrix: csr_matrix, settings: dict) -> np.ndarray:
    model = AlternatingLeastSquares(
        factors=settings["factors"],
        regularization=settings["regularization"],
        iterations=15,
        random_state=SEED,
    )
    weighted = _confidence(matrix, settings["scheme"], settings["alpha"])
    with threadpool_limits(1, "blas"):
        model.fit(weighted, show_progress=False)
    users = np.arange(matrix.shape[0])
    ids, _ = model.recommend(users, weighted[users], N=K, filter_already_liked_items=True)
    return ids


def top_k_knn(matrix: csr_matrix, settings: dict) -> np.ndarray:
    recommender = {"cosine": CosineRecommender, "bm25": BM25Recommender}[settings["similarity"]]
    model = recommender(K=settings["K"])
    binary = matrix.copy().astype(np.float32)
    binary.data[:] = 1.0
    model.fit(binary, show_progress=False)
    users = np.arange(matrix.shape[0])
    ids, _ = model.recommend(users, binary[users], N=K, filter_already_liked_items=True)
    return ids


def top_k_popular(matrix: csr_matrix, settings: dict) -> np.ndarray:
    order = np.argsort(-np.diff(matrix.tocsc().indptr), kind="stable")
    rows = []
    for user in range(matrix.shape[0]):
        seen = set(matrix.indices[matrix.indptr[user] : matrix.indptr[user + 1]])
        rows.append([a for a in order[: K + len(seen)] if a not in seen][:K])
    return np.array(rows)


def bias_predictions(matrix: csr_matrix, lam: float, users, artists) -> np.ndarray:
    """μ + b_u + b_i, each bias the regularized mean of its residuals (ten alternating sweeps)."""
    coo = matrix.tocoo()
    mu = coo.data.mean()
    b_user, b_item = np.zeros(matrix.shape[0]), np.zeros(matrix.shape[1])
    for _ in range(10):
        residual = coo.data - mu - b_item[coo.col]
        b_user = np.bincount(coo.row, residual, matrix.shape[0]) / (
            np.bincount(coo.row, minlength=matrix.shape[0]) + lam
        )
        residual = coo.data - mu - b_user[coo.row]
        b_item = np.bincount(coo.col, residual, matrix.shape[1]) / (
            np.bincount(coo.col, minlength=matrix.shape[1]) + lam
        )
    return mu + b_user[users] + b_item[artists]


def validation_split(matrix: csr_matrix) -> tuple[csr_matrix, dict[int, set]]:
    """A fifth of each row of ``matrix`` for validation (seeded), the rest to fit."""
    rng = np.random.default_rng(SEED + 1)
    coo = matrix.tocoo()
    held = rng.random(coo.nnz) < 1 / HELD_OUT_SHARE
    fit = csr_matrix((coo.data[~held], (coo.row[~held], coo.col[~held])), shape=matrix.shape)
    validation: dict[int, set] = {}
    for row, col in zip(coo.row[held], coo.col[held], strict=True):
        validation.setdefault(int(row), set()).add(int(col))
    return fit, validation


def tuned(top_k, grid: dict, matrix: csr_matrix) -> tuple[dict, int]:
    """The grid point whose lists score the best validation NDCG@K, and the grid's size."""
    fit, validation = validation_split(matrix)
    points = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]

    def score(settings):
        ids = top_k(fit, settings)
        return ndcg_at_k({u: list(ids[u]) for u in validation}, validation)

    return max(points, key=score), len(points)


def bias_lambda(matrix: csr_matrix) -> float:
    fit, validation = validation_split(matrix)
    coo = matrix.tocoo()
    held = {(r, c) for r, cols in validation.items() for c in cols}
    mask = np.array([(r, c) in held for r, c in zip(coo.row, coo.col, strict=True)])

    def error(lam):
        predicted = bias_predictions(fit, lam, coo.row[mask], coo.col[mask])
        return float(np.sqrt(np.mean((predicted - coo.data[mask]) ** 2)))

    return min(BIAS_LAMBDAS, key=error)


def compare(name: str, frame: pd.DataFrame, kind: str) -> None:
    train, test = hold_out(frame)
    split = Split(train, test, kind)
    with tempfile.TemporaryDirectory(prefix="bench-tune-") as folder:
        home = Path(folder)
        write_landing(train, kind, home / "landing")
        run_seconds, refused, said = run_musicrec(home)
        published = None if refused else Published(home)

    def lists_of(ids: np.ndarray) -> dict[str, list]:
        return {
            user: list(split.artists[ids[row][ids[row] >= 0]])
            for row, user in enumerate(split.users)
        }

    rows = []
    notes = [f"musicrec run (default settings, its whole budget): {run_seconds:.0f} s", *said]
    if refused:
        notes.append(f"musicrec published nothing (its gate): {refused}")
    lists = {} if published is None else {"musicrec (published list)": published.lists}
    grid = {**ALS_GRID, "scheme": ALS_SCHEMES[kind]}
    for peer, top_k, peer_grid in (
        ("implicit ALS, tuned", top_k_als, grid),
        ("item-kNN, tuned", top_k_knn, KNN_GRID),
    ):
        started = time.perf_counter()
        best, points = tuned(top_k, peer_grid, split.matrix)
        lists[peer] = lists_of(top_k(split.matrix, best))
        seconds = time.perf_counter() - started
        notes.append(f"{peer}: {best} (best of {points} on validation, {seconds:.0f} s)")
    lists["most popular"] = lists_of(top_k_popular(split.matrix, {}))

    ratings = kind == "ratings"
    for model, listed in lists.items():
        row = [model, f"{ndcg_at_k(listed, split.any):.4f}"]
        if ratings:
            row += [
                f"{ndcg_at_k(listed, split.liked):.4f}",
                "—" if published is None else f"{dislike_share(listed, split, published):.1%}",
            ]
        rows.append(row)
    columns = ["model", "NDCG@10"] + (["liked NDCG@10", "predicted dislikes"] if ratings else [])
    print_table(
        f"{name}: {len(split.users):,} listeners × {len(split.artists):,} artists, "
        f"{len(train):,} training / {len(test):,} held-out {kind}",
        columns,
        rows,
    )
    if ratings and published is not None:
        users = test["user_id"].to_numpy()
        artists = test["artist_id"].to_numpy()
        actual = test["value"].to_numpy(float)
        lam = bias_lambda(split.matrix)
        bias = bias_predictions(
            split.matrix, lam, split.users.get_indexer(users), split.artists.get_indexer(artists)
        )
        ours = published.predict(users, artists)
        print_table(
            f"{name}: RMSE of the held-out ratings",
            ["model", "RMSE"],
            [
                [
                    "musicrec (published rating factors)",
                    f"{np.sqrt(np.mean((ours - actual) ** 2)):.4f}",
                ],
                [
                    f"bias model, λ {lam:g} by validation",
                    f"{np.sqrt(np.mean((bias - actual) ** 2)):.4f}",
                ],
                [
                    "global mean",
                    f"{np.sqrt(np.mean((split.matrix.data.mean() - actual) ** 2)):.4f}",
                ],
            ],
        )
        frontier(name, split, published)
    print("\n".join(notes))


FRONTIER_WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)


def frontier(name: str, split: Split, published: Published) -> None:
    """What fewer predicted dislikes cost, from the published models themselves: lists ordered
    by the ranking score standardised per listener plus w × the predicted rating (the blend
    musicrec publishes, w chosen by CV), and lists with every predicted dislike filtered out;
    beside them how many held-out ratings are below the listener's mean (the data's own
    share) and how often the rating model calls a list's held-out hits right."""
    ranking = published.scores("ranking", split)
    ranking = (ranking - ranking.mean(axis=1, keepdims=True)) / (
        ranking.std(axis=1, keepdims=True) + 1e-12
    )
    rating = published.scores("rating", split)
    means = split.means.reindex(split.users).to_numpy(np.float32)[:, None]
    seen = split.matrix.toarray() > 0

    def listed(scores: np.ndarray) -> np.ndarray:
        scores = np.where(seen, -np.inf, scores)
        top = np.argpartition(-scores, K, axis=1)[:, :K]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        return np.take_along_axis(top, order, axis=1)

    # each variant's scores made as its turn comes: one users × artists matrix at a time
    variants = {f"blend w = {w:g}": lambda w=w: ranking + w * rating for w in FRONTIER_WEIGHTS}
    # a predicted dislike sinks below every other artist, keeping its ranking order there
    variants["dislikes filtered out"] = lambda: ranking - 1e6 * (rating < means)
    rows = []
    for variant, scores in variants.items():
        top = listed(scores())
        lists = {user: list(split.artists[top[row]]) for row, user in enumerate(split.users)}
        dislikes = np.take_along_axis(rating, top, axis=1) < means
        rows.append(
            [
                variant,
                f"{ndcg_at_k(lists, split.any):.4f}",
                f"{ndcg_at_k(lists, split.liked):.4f}",
                f"{dislikes.mean():.1%}",
            ]
        )
    print_table(
        f"{name}: NDCG@10 against predicted dislikes, the published models re-ordered",
        ["lists", "NDCG@10", "liked NDCG@10", "predicted dislikes"],
        rows,
    )
    test = split.test
    rows_of = split.users.get_indexer(test["user_id"])
    columns_of = split.artists.get_indexer(test["artist_id"])
    below = test["value"].to_numpy() < means[rows_of, 0]
    top = listed(ranking)
    hit = (top[rows_of] == columns_of[:, None]).any(axis=1)
    called = rating[rows_of, columns_of] < means[rows_of, 0]
    right = np.mean(called[hit] == below[hit])
    print(
        f"held-out ratings below the listener's training mean: {below.mean():.1%}; of the "
        f"ranking model's top-10 hits ({hit.sum():,}), {below[hit].mean():.1%} are, the rating "
        f"model predicts {called[hit].mean():.1%}, and calls {right:.1%} of them right"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=list(DATASETS), help="these data sets only")
    args = parser.parse_args()
    print_environment(__doc__.split("\n\n")[0])
    for name in args.only or DATASETS:
        loaded = DATASETS[name]()
        if loaded is not None:
            compare(name, *loaded)


if __name__ == "__main__":
    main()
