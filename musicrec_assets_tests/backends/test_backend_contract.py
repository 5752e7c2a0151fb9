"""The contract every training backend keeps at the seam (``backends/base.py``), written once
against the protocol and run on each backend, as ``implicit``'s ``RecommenderBaseTestMixin`` is:
:class:`BackendContract` holds the tests, each backend's class only supplies the backend.

On one small world per class, the steps run as the assets run them: ``hold_out`` writes
``evaluation_split``, ``tuning`` cross-validates a grid of each model and chooses the blend,
``train`` fits the chosen settings, and ``publish_top_n`` publishes a champion's tables. The
Spark class also checks that Spark's numbers agree with the local backend's on the same split
and the same champion, within the tolerances of test_spark_als.py's parity tests.

The split rule is shared, not the rows: Spark orders each user's ratings by a seeded hash where
numpy shuffles, so both backends train on the same number of each user's ratings, not on the
same ones. Where Spark does not yet keep the contract, its test is a strict xfail that names
the bug. (The graph with ``backend: spark`` end to end: test_spark_cluster.py.)"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from musicrec_assets.backends import Backend, TrainingBackend, base, open_backend
from musicrec_assets.backends.base import Tuner
from musicrec_assets.backends.local import LocalBackend
from musicrec_assets.backends.spark.als import missing_spark_requirement
from musicrec_assets.datasets.synthetic import SampleWorld, generate_world
from musicrec_assets.evaluation import tuning
from musicrec_assets.evaluation.blend import NDCG_TOLERANCE
from musicrec_assets.evaluation.metrics import primary_metric
from musicrec_assets.evaluation.promotion import (
    RANKING_BASELINES,
    RATING_BASELINES,
    CandidateReport,
    CandidateSettings,
)
from musicrec_assets.model.baselines import fit_most_popular
from musicrec_assets.model.factors import ModelPair, TrainingParams
from musicrec_assets.model.fitters import fit_local, ranking_base_params, rating_base_params
from musicrec_assets.warehouse.interactions import (
    load_ids,
    load_matrix,
    load_split,
    update_indexes,
    write_seen_npz,
)
from musicrec_assets.warehouse.model_tables import artist_names
from musicrec_assets.warehouse.tables import connect, ensure_schema

FEEDBACK = "explicit"  # ratings: the rating model, the blend and the rating baselines too
SEED = 42
TEST_SHARE = 0.2
N_FOLDS = 2
ITERATIONS = 3
TOP_N = 5
VERSION = "7"
CREATED_AT = datetime(2025, 1, 2, 3, 4, 5)
# the ranking grid in implicit's plain λ; a backend whose ALS scales λ by each row's count
# (Tuner.regularization_scale) searches the same strengths, rescaled as base.searches does
RANKING_REGULARIZATIONS = (1.0, 3.0)
RANKING_OVERRIDES = {"rank": [8], "confidence": ["binary"], "alpha": [1.0]}
RATING_OVERRIDES = {"rank": [2], "regularization": [0.5], "bias_regularization": [10.0]}
NEIGHBOUR_OVERRIDES = {"neighbours": [5], "similarity": ["cosine"]}
BLEND_WEIGHTS = (0.0, 0.5)
# what each published table stamps on every row
STAMPS = {
    "user_recommendations": {
        "model_version": VERSION,
        "created_at": CREATED_AT,
        "source": "model",
        "refreshed_at": CREATED_AT,
    },
    "artist_top_users": {"model_version": VERSION, "source": "model", "refreshed_at": CREATED_AT},
    "similar_artists": {
        "model_version": VERSION,
        "artist_source": "ratings",
        "similar_artist_source": "ratings",
    },
}
TABLES = {
    "user_recommendations": ("user_id", "artist_id", "score"),
    "artist_top_users": ("artist_id", "user_id", "score"),
    "similar_artists": ("artist_id", "similar_artist_id", "similarity"),
}


def tiny_world() -> SampleWorld:
    """51 listeners, 124 rated artists, 805 ratings: taste picks the artists more than
    popularity does (a ranking model beats most popular here), five listeners have fewer than
    five ratings (they keep all in train), and one listener alone rated five artists nobody
    else did: the one rating of theirs held out is cold on any backend, whatever the seed."""
    world = generate_world(
        seed=7,
        n_users=50,
        n_artists=120,
        n_ratings=800,
        min_ratings_per_user=3,
        taste_selection=3.0,
        popularity_exponent=0.5,
    )
    alone = [f"alone-{number}" for number in range(5)]
    return SampleWorld(
        users=pd.concat([world.users, pd.DataFrame({"id": ["loner"]})], ignore_index=True),
        artists=pd.concat([world.artists, pd.DataFrame({"id": alone})], ignore_index=True),
        ratings=pd.concat(
            [
                world.ratings,
                pd.DataFrame({"user_id": "loner", "artist_id": alone, "rating": 4.0, "plays": 3}),
            ],
            ignore_index=True,
        ),
    )


@dataclass(frozen=True)
class Warehouse:
    """A warehouse file and the ``connect`` callable the backends take (a connection per use,
    closed again)."""

    path: Path

    @contextmanager
    def connect(self):
        con = connect(self.path)
        try:
            yield con
        finally:
            con.close()

    def query(self, sql: str) -> pd.DataFrame:
        with self.connect() as con:
            return con.execute(sql).df()

    def copy(self, folder: Path) -> Warehouse:
        """The warehouse as it is now, in ``folder`` (no connection is open between uses)."""
        folder.mkdir(parents=True, exist_ok=True)
        return Warehouse(Path(shutil.copy(self.path, folder / self.path.name)))


def write_world(path: Path) -> Warehouse:
    world = tiny_world()
    with duckdb.connect(str(path)) as con:
        ensure_schema(con)
        loaded = {"source_file": "contract", "ingested_at": CREATED_AT}
        con.register("world_users", world.users.assign(**loaded))
        con.execute(
            "INSERT INTO users (id, first_name, last_name, source_file, ingested_at) "
            "SELECT id, first_name, last_name, source_file, ingested_at FROM world_users"
        )
        con.register("world_artists", world.artists.assign(**loaded))
        con.execute(
            "INSERT INTO artists (id, name, source_file, ingested_at) "
            "SELECT id, name, source_file, ingested_at FROM world_artists"
        )
        con.register("world_ratings", world.ratings.assign(**loaded))
        con.execute(
            "INSERT INTO ratings (user_id, artist_id, rating, plays, source_file, ingested_at) "
            "SELECT user_id, artist_id, rating, plays, source_file, ingested_at "
            "FROM world_ratings"
        )
        update_indexes(con, FEEDBACK)
    return Warehouse(path)


@dataclass(frozen=True)
class Tuned:
    """One tuning, its tuner still open: each model's (fixed settings, grid) and search
    result, and the blend (None where the backend does not blend)."""

    tuner: Tuner
    searches: dict[str, tuple[TrainingParams, tuning.SearchSpace]]
    results: dict[str, tuning.SearchResult]
    blend: tuning.SearchResult | None

    def chosen(self) -> CandidateSettings:
        """The best of each search, as ``model_tables.chosen_params`` reads them back."""
        return CandidateSettings(
            ranking=self.results["ranking"].best.params,
            rating=self.results["rating"].best.params,
            neighbours=self.results["item_knn"].best.params if "item_knn" in self.results else None,
            blend_weight=0.0 if self.blend is None else self.blend.best.params.blend_weight,
        )


def plain_regularization(settings: CandidateSettings, scale: float | None) -> CandidateSettings:
    """``settings`` with the ranking model's λ in implicit's plain terms (the local backend's)."""
    if scale is None:
        return settings
    ranking = replace(
        settings.ranking,
        regularization=settings.ranking.regularization / scale,
        weighted_regularization=False,
    )
    return replace(settings, ranking=ranking)


class BackendContract:
    """The tests every backend passes. A subclass supplies ``kind`` (the backend
    :func:`open_backend` names), ``blends`` (whether its lists may blend in the predicted
    rating, ``Tuner.choose_blend``) and the ``backend`` fixture."""

    kind: Backend
    blends: bool

    @pytest.fixture(scope="class")
    def warehouse(self, tmp_path_factory) -> Warehouse:
        return write_world(tmp_path_factory.mktemp("contract") / "warehouse.duckdb")

    @pytest.fixture(scope="class")
    def backend(self, warehouse) -> TrainingBackend:
        raise NotImplementedError("each backend's class supplies its backend")

    @pytest.fixture(scope="class")
    def held_out(self, backend, warehouse) -> int:
        return backend.hold_out(warehouse.connect, FEEDBACK, TEST_SHARE, SEED)

    @pytest.fixture(scope="class")
    def tuned(self, backend, warehouse, held_out) -> Iterator[Tuned]:
        """One tuning, kept open for the class (a test searches once more on it)."""
        with backend.tuning(warehouse.connect, FEEDBACK, N_FOLDS, SEED, 0) as tuner:
            scale = tuner.regularization_scale
            ranking = RANKING_OVERRIDES | {
                "regularization": [value * (scale or 1.0) for value in RANKING_REGULARIZATIONS]
            }
            searches = base.searches(
                FEEDBACK,
                tuner,
                ITERATIONS,
                SEED,
                ranking,
                RATING_OVERRIDES,
                NEIGHBOUR_OVERRIDES,
            )
            results = {
                model: tuner.cross_validate(model, fixed, space)
                for model, (fixed, space) in searches.items()
            }
            blend = tuner.choose_blend(
                results["ranking"].best.params, results["rating"].best.params, BLEND_WEIGHTS
            )
            yield Tuned(tuner, searches, results, blend)

    @pytest.fixture(scope="class")
    def ids(self, warehouse) -> tuple[np.ndarray, np.ndarray]:
        with warehouse.connect() as con:
            return load_ids(con)

    @pytest.fixture(scope="class")
    def trained(self, backend, warehouse, tuned, ids) -> tuple[CandidateReport, ModelPair]:
        return backend.train(warehouse.connect, tuned.chosen(), ids, None, 0, SEED)

    @pytest.fixture(scope="class")
    def champion(self, warehouse, tmp_path_factory) -> Path:
        """The files of a champion whose lists blend the predicted rating in (fitted locally on
        all ratings, so that every backend publishes the same one), as the registry keeps
        them."""
        folder = tmp_path_factory.mktemp("champion")
        with warehouse.connect() as con:
            matrix = load_matrix(con, FEEDBACK)
            write_seen_npz(con, FEEDBACK, folder / "seen.npz")
            artist_names(con).to_parquet(folder / "artist_names.parquet", index=False)
        ranking = ranking_base_params(FEEDBACK, ITERATIONS, SEED)
        ranking = replace(ranking, rank=8, regularization=1.0, alpha=1.0)
        rating = replace(rating_base_params(ITERATIONS, SEED), rank=2, regularization=0.5)
        pair = ModelPair(fit_local(matrix.values, ranking), fit_local(matrix.values, rating), 0.5)
        pair.with_ids(matrix.user_ids, matrix.item_ids).save(folder, "factors")
        return folder

    @pytest.fixture(scope="class")
    def published(self, backend, warehouse, champion) -> dict[str, int]:
        return {
            table: backend.publish_top_n(
                warehouse.connect, table, champion, VERSION, TOP_N, CREATED_AT
            )
            for table in TABLES
        }

    def test_open_backend_gives_the_backend_it_names(self, backend):
        assert backend.name == self.kind

    def test_hold_out_keeps_the_shared_split_rule(self, warehouse, held_out):
        ratings = warehouse.query("SELECT user_id, artist_id FROM ratings WHERE rating NOT NULL")
        split = warehouse.query("SELECT user_id, artist_id, part FROM evaluation_split")
        # every user with at least 5 ratings holds out round-half-up(20%) of them; the others
        # keep all in train (the held-out rows of a cold artist are dropped, not trained on)
        per_user = ratings.groupby("user_id").size()
        assert (per_user < 5).any()
        trained = split[split["part"] == "train"].groupby("user_id").size()
        held = np.where(per_user >= 5, np.floor(TEST_SHARE * per_user + 0.5), 0).astype(int)
        np.testing.assert_array_equal(
            trained.reindex(per_user.index, fill_value=0).to_numpy(), per_user.to_numpy() - held
        )
        assert set(split["part"]) == {"train", "test"}
        assert not split.duplicated(["user_id", "artist_id"]).any()
        assert len(split.merge(ratings, on=["user_id", "artist_id"])) == len(split)
        test_artists = set(split.loc[split["part"] == "test", "artist_id"])
        assert test_artists <= set(split.loc[split["part"] == "train", "artist_id"])
        # what it returns is the cold held-out rows it dropped
        assert held_out > 0
        assert held_out == len(ratings) - len(split)

    def test_hold_out_is_seeded(self, backend, warehouse, held_out, tmp_path):
        again = warehouse.copy(tmp_path)
        with again.connect() as con:
            con.execute("DROP TABLE evaluation_split")
        assert backend.hold_out(again.connect, FEEDBACK, TEST_SHARE, SEED) == held_out
        order = "SELECT * FROM evaluation_split ORDER BY user_id, artist_id"
        pd.testing.assert_frame_equal(again.query(order), warehouse.query(order))

    def test_the_tuner_rescales_lambda_to_the_plain_strength(self, tuned, warehouse):
        if tuned.tuner.regularization_scale is None:
            assert not tuned.searches["ranking"][0].weighted_regularization
            return
        # Spark's ALS multiplies λ by each row's count: the plain λ's strength is λ · users /
        # interactions of the training part
        parts = warehouse.query(
            "SELECT count(DISTINCT user_id) AS users, count(*) AS n FROM evaluation_split "
            "WHERE part = 'train'"
        )
        assert tuned.tuner.regularization_scale == pytest.approx(parts["users"][0] / parts["n"][0])
        assert tuned.searches["ranking"][0].weighted_regularization

    def test_cross_validate_runs_every_point_of_the_grid_on_every_fold(self, tuned):
        assert {"ranking", "rating"} <= set(tuned.results)
        for model, (fixed, space) in tuned.searches.items():
            result = tuned.results[model]
            assert [trial.params for trial in result.trials] == [
                replace(fixed, **point) for point in space.grid()
            ], model
            metric, higher_is_better = primary_metric(fixed.objective)
            assert (result.primary_metric, result.higher_is_better) == (metric, higher_is_better)
            assert result.stopped_by == "candidates"
            for trial in result.trials:
                assert not trial.pruned and len(trial.fold_metrics) == N_FOLDS, model
                folds = [fold[metric] for fold in trial.fold_metrics]
                assert all(np.isfinite(folds)) and min(folds) > 0, model
                assert trial.mean_metrics[metric] == pytest.approx(np.mean(folds)), model
            means = [trial.mean_metrics[metric] for trial in result.trials]
            best = max(means) if higher_is_better else min(means)
            assert result.best in result.trials
            assert result.best.mean_metrics[metric] == best, model

    def test_cross_validate_fits_the_bias_model_of_the_rating_space(self, tuned):
        # the rating space's point without latent factors (`latent_factors` False, which an
        # adaptive search of the default space draws) is rank 0: the bias model
        fixed, _ = tuned.searches["rating"]
        space = tuning.rating_space(RATING_OVERRIDES | {"rank": [0]})
        result = tuned.tuner.cross_validate("bias_model", fixed, space)
        assert [trial.params.rank for trial in result.trials] == [0]
        folds = [fold["rmse"] for fold in result.best.fold_metrics]
        assert len(folds) == N_FOLDS and all(0 < rmse < 2 for rmse in folds)

    def test_the_best_ranking_trial_beats_most_popular(self, tuned, warehouse):
        # most popular on the local folds of the same training part and seed (the Spark
        # backend's folds follow the same rule by a hashed order, so its scores are comparable,
        # not the same)
        with warehouse.connect() as con:
            train = load_split(con, FEEDBACK)[0]
        popular = tuning.cross_validate(
            train,
            tuned.searches["ranking"][0],
            [{}],
            FEEDBACK,
            n_folds=N_FOLDS,
            seed=SEED,
            fit=lambda matrix, params: fit_most_popular(matrix),
        ).best.mean_metrics["ndcg_at_10"]
        assert tuned.results["ranking"].best.mean_metrics["ndcg_at_10"] > popular

    def test_choose_blend_tries_each_weight_and_keeps_the_lists_ranking(self, tuned):
        if not self.blends:
            assert tuned.blend is None
            return
        blend = tuned.blend
        assert [trial.params.blend_weight for trial in blend.trials] == list(BLEND_WEIGHTS)
        assert blend.primary_metric == "list_score_at_10" and blend.higher_is_better
        assert all(len(trial.fold_metrics) == N_FOLDS for trial in blend.trials)
        alone = blend.trials[0].mean_metrics["ndcg_at_10"]
        assert blend.best in blend.trials
        assert blend.best.mean_metrics["ndcg_at_10"] >= (1 - NDCG_TOLERANCE) * alone

    def test_train_scores_the_candidate_beside_the_baselines(self, trained, tuned, warehouse):
        report, _ = trained
        chosen = tuned.chosen()
        models = {"ranking", "rating", "most_popular", *RATING_BASELINES}
        if chosen.neighbours is not None:
            models.add("item_knn")
        assert models <= set(report.scores) <= models | {"ranking_alone"}
        for name, scores in report.scores.items():
            assert 0 <= scores["ndcg_at_10"] <= 1, name
        for name in ("rating", *RATING_BASELINES):
            assert report.scores[name]["rmse"] > 0, name
        assert report.scores["ranking"]["ndcg_at_10"] > report.scores["most_popular"]["ndcg_at_10"]
        assert report.ranking_beats_baselines
        assert set(report.noise) == {name for name in RANKING_BASELINES if name in report.scores}
        # no champion: the candidate takes the place
        assert report.promote and report.reason.startswith("no champion yet")
        held_out_users = warehouse.query(
            "SELECT count(DISTINCT user_id) AS n FROM evaluation_split WHERE part = 'test'"
        )["n"][0]
        assert report.ranked_users == held_out_users
        assert len(report.split_id) == 64 and int(report.split_id, 16) >= 0
        evaluated = report.evaluation_model
        assert evaluated.ranking.params == chosen.ranking
        assert evaluated.rating.params == chosen.rating
        assert evaluated.blend_weight in (0.0, chosen.blend_weight)

    def test_train_fits_on_the_training_part_and_serves_a_refit_on_all_data(
        self, trained, tuned, warehouse, ids
    ):
        report, serving = trained
        assert serving.ranking.params == tuned.chosen().ranking
        assert serving.rating.params == report.serving_rating_params
        assert serving.blend_weight == report.evaluation_model.blend_weight
        for pair in (serving, report.evaluation_model):
            for role, model in pair.models().items():
                np.testing.assert_array_equal(model.user_ids, ids[0])
                np.testing.assert_array_equal(model.item_ids, ids[1])
                rank = model.params.rank
                assert model.user_factors.shape == (len(ids[0]), rank), role
                assert model.item_factors.shape == (len(ids[1]), rank), role
                assert model.user_factors.dtype == model.item_factors.dtype == np.float32, role
                assert np.isfinite(model.user_factors).all(), role
        ratings = warehouse.query(
            "SELECT r.rating, s.part, a.artist_idx FROM ratings r "
            "JOIN artist_index a USING (artist_id) "
            "LEFT JOIN evaluation_split s USING (user_id, artist_id)"
        )
        # the rating models' global mean: the training part's, then all ratings'
        train = ratings[ratings["part"] == "train"]
        assert report.evaluation_model.rating.global_mean == pytest.approx(train["rating"].mean())
        assert serving.rating.global_mean == pytest.approx(ratings["rating"].mean())
        # an artist without a training row has no factors in the evaluated ranking model, and
        # every artist has them in the served one
        unseen = np.setdiff1d(ratings["artist_idx"], train["artist_idx"])
        assert len(unseen) > 0
        assert not report.evaluation_model.ranking.item_factors[unseen].any()
        assert serving.ranking.item_factors.any(axis=1).all()

    def test_user_recommendations_are_each_users_top_unrated_artists(
        self, published, warehouse, champion, ids
    ):
        rows = published_rows(warehouse, published, "user_recommendations")
        models = ModelPair.load(champion, "factors")
        listed = models.list_model()  # the lists blend the predicted rating in
        scores = listed.user_vectors() @ listed.item_vectors().T
        users, artists = assert_top_n(
            rows, ("user_id", ids[0]), ("artist_id", ids[1]), scores, rated(warehouse)
        )
        predicted = models.rating.predict(users, artists)
        np.testing.assert_allclose(rows["predicted_rating"], predicted, rtol=1e-5, atol=1e-6)

    def test_artist_top_users_are_each_artists_top_new_listeners(
        self, published, warehouse, champion, ids
    ):
        rows = published_rows(warehouse, published, "artist_top_users")
        ranking = ModelPair.load(champion, "factors").ranking
        scores = ranking.item_vectors() @ ranking.user_vectors().T
        assert_top_n(rows, ("artist_id", ids[1]), ("user_id", ids[0]), scores, rated(warehouse).T)

    def test_similar_artists_are_other_artists_by_the_cosine_of_their_factors(
        self, published, warehouse, champion, ids
    ):
        rows = published_rows(warehouse, published, "similar_artists")
        factors = ModelPair.load(champion, "factors").ranking.item_factors.astype(np.float64)
        unit = factors / np.linalg.norm(factors, axis=1, keepdims=True)
        artists = index_of(rows["artist_id"], ids[1])
        similar = index_of(rows["similar_artist_id"], ids[1])
        per_artist = rows.groupby("artist_id")["rank"].agg(list)
        assert len(per_artist) == len(ids[1])
        assert all(ranks == list(range(1, TOP_N + 1)) for ranks in per_artist)
        assert not (artists == similar).any()
        # ordered by the cosine shrunk by both artists' listeners (not by the cosine itself)
        cosine = np.einsum("ij,ij->i", unit[artists], unit[similar])
        np.testing.assert_allclose(rows["similarity"], cosine, rtol=1e-5, atol=1e-6)


def index_of(values: pd.Series, ids: np.ndarray) -> np.ndarray:
    found = pd.Index(ids).get_indexer(values)
    assert (found >= 0).all()
    return found


def rated(warehouse: Warehouse) -> np.ndarray:
    """users × artists: whether the user rated the artist."""
    with warehouse.connect() as con:
        return load_matrix(con, FEEDBACK).values.toarray() > 0


def published_rows(warehouse: Warehouse, published: dict[str, int], table: str) -> pd.DataFrame:
    """``table`` as published: as many rows as ``publish_top_n`` said, all in its named view,
    each stamped with the version (and the time it was built, where the table keeps it)."""
    rows = warehouse.query(f"SELECT * FROM {table}")
    assert published[table] == len(rows)
    named = warehouse.query(f"SELECT count(*) AS n FROM {table}_named")
    assert named["n"][0] == len(rows)
    for column, value in STAMPS[table].items():
        assert (rows[column] == value).all(), column
    return rows


def assert_top_n(rows, query, candidate, scores, seen) -> tuple[np.ndarray, np.ndarray]:
    """Every query (``(column, ids)``) has ``TOP_N`` rows ranked 1…N, none of them a
    candidate it has seen, each with its ``scores``, in descending order, and no unseen
    candidate outscores the last one listed; returns the rows' (query, candidate) indexes."""
    queries, candidates = (
        index_of(rows[query[0]], query[1]),
        index_of(rows[candidate[0]], candidate[1]),
    )
    per_query = rows.sort_values([query[0], "rank"]).groupby(query[0])
    assert per_query.ngroups == len(query[1])
    assert all(ranks == list(range(1, TOP_N + 1)) for ranks in per_query["rank"].agg(list))
    assert not seen[queries, candidates].any()
    np.testing.assert_allclose(rows["score"], scores[queries, candidates], rtol=1e-5, atol=1e-6)
    assert all(np.all(np.diff(values) <= 1e-6) for values in per_query["score"].agg(list))
    listed = np.zeros_like(seen)
    listed[queries, candidates] = True
    last = np.full(len(query[1]), np.inf)
    np.minimum.at(last, queries, scores[queries, candidates])
    left_out = np.where(seen | listed, -np.inf, scores).max(axis=1)
    assert (left_out <= last + 1e-5).all()
    return queries, candidates


class TestLocalBackend(BackendContract):
    kind = Backend.local
    blends = True

    @pytest.fixture(scope="class")
    def backend(self, warehouse) -> TrainingBackend:
        return open_backend(Backend.local, None)


@pytest.mark.slow
@pytest.mark.skipif(
    missing_spark_requirement() is not None, reason=str(missing_spark_requirement())
)
class TestSparkBackend(BackendContract):
    kind = Backend.spark
    blends = False  # Spark's lists are the ranking model's own

    @pytest.fixture(scope="class")
    def backend(self, warehouse, spark) -> TrainingBackend:
        root = warehouse.path.parent / "spark"

        @contextmanager
        def workspace():
            # the process's one session (the session-scoped fixture), a folder per step
            root.mkdir(exist_ok=True)
            with tempfile.TemporaryDirectory(dir=root, prefix="step-") as work:
                yield spark, Path(work)

        return open_backend(Backend.spark, workspace)

    @pytest.fixture(scope="class")
    def local_scores(self, tuned, warehouse, ids) -> dict[str, dict[str, float]]:
        """The local backend's report of the same settings (the ranking model's λ in plain
        terms) on the split Spark held out."""
        settings = plain_regularization(tuned.chosen(), tuned.tuner.regularization_scale)
        return LocalBackend().train(warehouse.connect, settings, ids, None, 0, SEED)[0].scores

    def test_spark_scores_as_the_local_backend_does(self, trained, local_scores):
        spark = trained[0].scores
        assert set(spark) == set(local_scores)
        # the baselines are the same formulas on the same split: the same numbers, but for the
        # share of their lists each backend's own rating model expects the listener to dislike
        dislikes = "predicted_dislikes_at_10"
        for name in ("most_popular", *RATING_BASELINES):
            for metric, value in spark[name].items():
                tolerance = 0.02 if metric == dislikes else 1e-6
                expected = local_scores[name][metric]
                assert value == pytest.approx(expected, abs=tolerance), (name, metric)
        # the models are two ALS implementations: the tolerances of test_spark_als.py
        ndcg = local_scores["ranking"]["ndcg_at_10"]
        assert spark["ranking"]["ndcg_at_10"] == pytest.approx(ndcg, rel=0.1)
        assert spark["rating"]["rmse"] == pytest.approx(local_scores["rating"]["rmse"], rel=0.01)
        assert spark["ranking"][dislikes] == pytest.approx(
            local_scores["ranking"][dislikes], abs=0.05
        )

    def test_spark_fits_the_rating_model_with_biases(self, trained):
        # what a Spark-trained version logs as rating_use_biases, in Spark's λ terms
        report, serving = trained
        for pair in (report.evaluation_model, serving):
            assert pair.rating.params.use_biases and pair.rating.params.weighted_regularization
        scores = report.scores
        assert scores["rating"]["rmse"] < scores["global_mean"]["rmse"]
        assert scores["bias"]["rmse"] < scores["global_mean"]["rmse"]

    def test_spark_reports_the_metrics_the_local_backend_reports(self, trained, local_scores):
        for name, scores in local_scores.items():
            assert list(trained[0].scores[name]) == list(scores), name

    def test_spark_publishes_the_tables_the_local_backend_publishes(
        self, published, warehouse, champion, tmp_path
    ):
        local = warehouse.copy(tmp_path)
        for table in TABLES:
            LocalBackend().publish_top_n(local.connect, table, champion, VERSION, TOP_N, CREATED_AT)
        for table, (key, candidate, number) in TABLES.items():
            order = f"SELECT * FROM {table} ORDER BY {key}, rank"
            spark, expected = warehouse.query(order), local.query(order)
            assert list(spark.columns) == list(expected.columns), table
            assert list(spark.dtypes) == list(expected.dtypes), table
            numbers = [c for c in (number, "predicted_rating") if c in expected]
            pd.testing.assert_frame_equal(
                spark[numbers], expected[numbers], check_exact=False, rtol=1e-5
            )
            # the same lists, but where two candidates' float32 scores tie to the last bits
            # (summed in another order by another block size): at every rank the scores agree
            # (above), so a different id there is the other of a tie
            assert (spark[candidate] != expected[candidate]).mean() < 0.01, table
