import gzip
import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.sparse import csr_matrix

from musicrec_assets.datasets.synthetic import (
    LASTFM360K_GENRES,
    SAMPLE_DATA_DIR,
    generate_lastfm360k_shape,
    generate_world,
    lastfm360k_play_matrix,
    write_bulk_ratings,
    write_catalogue,
    write_demo_sample,
    write_landing,
)
from musicrec_assets.evaluation.split import train_test_split
from musicrec_assets.model.explicit_als import fit_explicit_als
from musicrec_assets.model.factors import TrainingParams
from musicrec_assets.model.sparse import to_triples

UUID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def world():
    return generate_world(seed=42)


def read_json_lines(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as stream:
        return [json.loads(line) for line in stream]


def folder_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_same_seed_same_bytes_different_seed_different_bytes(tmp_path):
    small = {"n_users": 60, "n_artists": 800, "n_ratings": 3_000}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        write_landing(generate_world(seed=seed, **small), tmp_path / name / "jsonl")
        write_landing(generate_world(seed=seed, **small), tmp_path / name / "gz", gzip=True)
        write_landing(generate_world(seed=seed, **small), tmp_path / name / "json", fmt="json")
    first, again, other = (folder_bytes(tmp_path / name) for name in "abc")
    assert len(first) == 9
    assert first == again
    assert first.keys() == other.keys()
    assert all(first[name] != other[name] for name in first)


def test_sizes_match_the_request(world):
    assert len(world.users) == 300
    assert len(world.artists) == 10_000
    assert len(world.ratings) == 30_000


def test_ids_are_unique_and_well_formed(world):
    assert world.users["id"].is_unique
    assert world.users["id"].str.fullmatch(r"[a-z]+[0-9]*").all()
    first_initial = world.users["first_name"].str[0].str.lower()
    assert (world.users["id"].str[0] == first_initial).all()
    assert world.artists["id"].is_unique
    assert world.artists["id"].str.fullmatch(UUID_PATTERN.pattern).all()
    assert all(uuid.UUID(artist_id).version == 4 for artist_id in world.artists["id"])
    assert world.artists["name"].is_unique
    assert (world.artists["name"].str.len() > 0).all()


def test_ratings_are_half_stars_with_plays_and_timestamps(world):
    ratings = world.ratings
    assert ratings["rating"].between(0.5, 5.0).all()
    assert np.array_equal(ratings["rating"] * 2, np.round(ratings["rating"] * 2))
    # the whole scale is used, not just the middle
    assert ratings["rating"].nunique() == 10
    assert (ratings["plays"] >= 1).all()
    assert ratings["plays"].max() > 50 * ratings["plays"].median()  # heavy tail
    assert ratings["timestamp"].between(1_136_073_600, 1_735_689_600).all()
    # plays follow the same affinity as ratings, so the implicit path has signal
    assert ratings["rating"].corr(np.log(ratings["plays"]), method="spearman") > 0.4


def test_ratings_reference_known_users_and_artists_once(world):
    ratings = world.ratings
    assert ratings["user_id"].isin(world.users["id"]).all()
    assert ratings["artist_id"].isin(world.artists["id"]).all()
    assert not ratings.duplicated(["user_id", "artist_id"]).any()
    per_user = ratings.groupby("user_id").size()
    assert len(per_user) == 300
    assert per_user.min() >= 20


def test_artist_popularity_is_long_tailed(world):
    per_artist = world.ratings["artist_id"].value_counts()
    top_tenth = per_artist.iloc[: len(world.artists) // 10].sum()
    assert top_tenth / len(world.ratings) > 0.5
    assert (per_artist == 1).sum() > 1_000  # and a long tail of artists rated once


def test_explicit_als_beats_the_bias_baseline_clearly(world):
    ratings = world.ratings
    user_ids, users = np.unique(ratings["user_id"].to_numpy(), return_inverse=True)
    artist_ids, artists = np.unique(ratings["artist_id"].to_numpy(), return_inverse=True)
    matrix = csr_matrix(
        (ratings["rating"].to_numpy(), (users, artists)), shape=(len(user_ids), len(artist_ids))
    )
    split = train_test_split(matrix, test_share=0.2, seed=1)
    test_users, test_artists, test_ratings = to_triples(split.test)

    def holdout_rmse(rank: int, regularization: float) -> float:
        params = TrainingParams(
            objective="rating",
            rank=rank,
            regularization=regularization,
            weighted_regularization=False,
            use_biases=True,
        )
        model = fit_explicit_als(split.train, params)
        errors = model.predict(test_users, test_artists) - test_ratings
        return float(np.sqrt(np.mean(errors**2)))

    # regularization tuned for each model on this split (bias-only is best at 5)
    bias_rmse = holdout_rmse(rank=0, regularization=5.0)
    als_rmse = holdout_rmse(rank=8, regularization=3.0)
    assert als_rmse < 0.9 * bias_rmse


def test_landing_files_round_trip(world, tmp_path):
    paths = write_landing(world, tmp_path, gzip={"ratings"})
    assert {name: path.relative_to(tmp_path).as_posix() for name, path in paths.items()} == {
        "users": "users/users.jsonl",
        "artists": "artists/artists.jsonl",
        "ratings": "ratings/ratings.jsonl.gz",
    }
    assert not list(tmp_path.rglob("*.part"))
    users = pd.DataFrame(read_json_lines(paths["users"]))
    pd.testing.assert_frame_equal(users, world.users, check_dtype=False)
    artists = pd.DataFrame(read_json_lines(paths["artists"]))
    pd.testing.assert_frame_equal(artists, world.artists[["id", "name"]], check_dtype=False)
    ratings = read_json_lines(paths["ratings"])
    assert list(ratings[0]) == ["user_id", "artist_id", "rating", "plays", "timestamp"]
    assert all(type(row["timestamp"]) is int and type(row["plays"]) is int for row in ratings)
    pd.testing.assert_frame_equal(pd.DataFrame(ratings), world.ratings, check_dtype=False)
    # UTF-8 text, not \u escapes
    artists_text = paths["artists"].read_text(encoding="utf-8")
    assert "\\u" not in artists_text
    assert any(not character.isascii() for character in artists_text)


def test_json_array_format_holds_the_same_records(world, tmp_path):
    lines = write_landing(world, tmp_path / "lines")
    arrays = write_landing(world, tmp_path / "arrays", fmt="json", gzip=True)
    assert arrays["users"].name == "users.json.gz"
    for entity in ("users", "artists", "ratings"):
        with gzip.open(arrays[entity], "rt", encoding="utf-8") as stream:
            assert json.load(stream) == read_json_lines(lines[entity])


def test_committed_demo_sample_is_what_the_code_generates(tmp_path):
    written = write_demo_sample(tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written.values()) == [
        "artists/artists.jsonl",
        "ratings/ratings.jsonl.gz",
        "users/users.jsonl",
    ]
    for path in written.values():
        committed = SAMPLE_DATA_DIR / path.relative_to(tmp_path)
        # compare decompressed bytes: another zlib build may compress differently
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(committed, "rb") as expected, opener(path, "rb") as actual:
            assert expected.read() == actual.read(), f"{committed} is stale"
    with gzip.open(written["ratings"], "rb") as stream:
        fresh = stream.read()
    direct = write_landing(generate_world(seed=42), tmp_path / "direct")
    assert direct["ratings"].read_bytes() == fresh
    total = sum(p.stat().st_size for p in SAMPLE_DATA_DIR.rglob("*") if p.is_file())
    assert total < 3_000_000


@pytest.mark.parametrize("name", ["ratings.jsonl", "ratings.jsonl.gz"])
def test_bulk_ratings_file(tmp_path, name):
    path = tmp_path / name
    catalogue = write_bulk_ratings(path, 20_000, 300, 2_000, seed=5, chunk_rows=3_000)
    rows = pd.DataFrame(read_json_lines(path))
    assert list(rows.columns) == ["user_id", "artist_id", "rating", "plays", "timestamp"]
    assert len(rows) == 20_000
    assert not rows.duplicated(["user_id", "artist_id"]).any()
    assert rows["user_id"].isin(catalogue.user_ids).all()
    assert rows["artist_id"].isin(catalogue.artist_ids).all()
    assert rows["user_id"].nunique() == 300  # everybody gets at least one row
    # rows are grouped by user, each user once, in catalogue order
    blocks = rows["user_id"][rows["user_id"] != rows["user_id"].shift()]
    assert blocks.tolist() == catalogue.user_ids.tolist()
    assert np.array_equal(rows["rating"] * 2, np.round(rows["rating"] * 2))
    assert rows["rating"].between(0.5, 5.0).all()
    assert (rows["plays"] >= 1).all()

    again = tmp_path / "again" / name
    write_bulk_ratings(again, 20_000, 300, 2_000, seed=5, chunk_rows=3_000)
    assert again.read_bytes() == path.read_bytes()

    catalogue_paths = write_catalogue(catalogue, tmp_path / "landing")
    users = read_json_lines(catalogue_paths["users"])
    artists = pd.DataFrame(read_json_lines(catalogue_paths["artists"]))
    assert [user["id"] for user in users] == catalogue.user_ids.tolist()
    assert all(re.fullmatch(r"[0-9a-f]{40}", user["id"]) for user in users)
    assert artists["id"].tolist() == catalogue.artist_ids.tolist()
    assert artists["id"].str.fullmatch(UUID_PATTERN.pattern).all()
    assert artists["name"].is_unique


def test_bulk_ratings_rejects_impossible_sizes(tmp_path):
    with pytest.raises(ValueError, match="cannot give"):
        write_bulk_ratings(tmp_path / "r.jsonl", 1_000, 10, 20, seed=0)


def test_lastfm360k_play_matrix_has_the_shape_of_the_files():
    plays = lastfm360k_play_matrix(scale=0.002, seed=3)
    assert plays.shape == (720, 320)
    assert plays.nnz == 35_000  # no pair twice (a repeat would be summed into one entry)
    assert plays.data.min() >= 1
    assert np.diff(plays.indptr).min() >= 1


def test_lastfm360k_shape_at_tiny_scale(tmp_path):
    counts = generate_lastfm360k_shape(tmp_path, scale=0.002, seed=3)
    assert counts == {"users": 720, "artists": 320, "ratings": 35_000}
    users = pd.DataFrame(read_json_lines(tmp_path / "users" / "users.jsonl.gz"))
    artists = pd.DataFrame(read_json_lines(tmp_path / "artists" / "artists.jsonl.gz"))
    rows = pd.DataFrame(read_json_lines(tmp_path / "ratings" / "ratings.jsonl.gz"))
    assert (len(users), len(artists), len(rows)) == (720, 320, 35_000)
    assert list(rows.columns) == ["user_id", "artist_id", "plays"]
    assert users["id"].is_unique and artists["id"].is_unique
    assert rows["user_id"].isin(users["id"]).all()
    assert rows["artist_id"].isin(artists["id"]).all()
    assert not rows.duplicated(["user_id", "artist_id"]).any()
    per_user = rows.groupby("user_id").size()
    assert per_user.min() >= 1
    assert per_user.max() > 2 * per_user.median()  # heavy-tailed
    assert (rows["plays"] >= 1).all()
    per_artist = rows["artist_id"].value_counts()
    assert per_artist.iloc[:32].sum() > 0.2 * len(rows)  # top 10% of artists

    # taste: artist i is of genre i % LASTFM360K_GENRES, and each listener leans to one
    def median_top_genre_share(genre_of_artist: np.ndarray) -> float:
        genre = pd.Series(genre_of_artist, index=artists["id"])
        listened = pd.DataFrame(
            {"user_id": rows["user_id"], "genre": genre[rows["artist_id"]].to_numpy()}
        )
        shares = listened.groupby("user_id")["genre"].agg(
            lambda genres: genres.value_counts().iloc[0] / len(genres)
        )
        return float(shares[per_user[shares.index] >= 10].median())

    genres = np.arange(len(artists)) % LASTFM360K_GENRES
    shuffled = np.random.default_rng(0).permutation(genres)
    assert median_top_genre_share(genres) > 2 * median_top_genre_share(shuffled)


def test_the_module_explains_itself_without_rewriting_the_sample():
    before = {path: path.stat().st_mtime_ns for path in SAMPLE_DATA_DIR.rglob("*.json*")}
    result = subprocess.run(
        [sys.executable, "-m", "musicrec_assets.datasets.synthetic", "--help"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and "Regenerate the bundled demo sample" in result.stdout
    assert {path: path.stat().st_mtime_ns for path in SAMPLE_DATA_DIR.rglob("*.json*")} == before
