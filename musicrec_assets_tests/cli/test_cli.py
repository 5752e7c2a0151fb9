"""The ``musicrec`` command through its installed entry point."""

import json
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from conftest import small_world

from musicrec_assets.cli.summary import HEADLINE_METRICS
from musicrec_assets.datasets.synthetic import write_landing

MUSICREC = str(Path(sys.executable).with_name("musicrec"))


def musicrec(*args, home=None, check=True):
    command = [MUSICREC, *args] + (["--home", str(home)] if home else [])
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def some_user_and_artist(home):
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        user, artist, name = con.execute(
            "SELECT user_id, artist_id, artist_name FROM user_recommendations_named "
            "WHERE rank = 1 ORDER BY user_id LIMIT 1"
        ).fetchall()[0]
    return user, artist, name


def test_recommend_known_user_with_explanations(pipeline_home):
    home, _ = pipeline_home
    user, _, name = some_user_and_artist(home)
    out = musicrec("recommend", user, "-n", "3", "--explain", home=home).stdout
    assert name in out
    assert "because you rated" in out
    assert out.count("because you rated") == 3
    assert out.count("you would rate it") == 3  # the rating model's prediction
    plain = musicrec("recommend", user, "-n", "3", home=home).stdout
    assert plain.splitlines()[0].split() == [
        "rank",
        "artist_id",
        "artist_name",
        "score",
        "predicted_rating",
        "model_version",
    ]


def test_recommend_new_listener_from_a_ratings_file(pipeline_home, tmp_path):
    home, _ = pipeline_home
    _, artist, _ = some_user_and_artist(home)
    ratings = tmp_path / "me.json"
    ratings.write_text(
        json.dumps([{"artist_id": artist, "rating": 5}, {"artist_id": "nope", "rating": 1}])
    )
    out = musicrec("recommend", "--ratings", str(ratings), "-n", "4", home=home).stdout
    assert "ignored unknown artist ids: nope" in out
    assert "new listener" in out and len(out.strip().splitlines()) >= 6


def test_similar_and_top_users_by_id_or_name(pipeline_home):
    home, _ = pipeline_home
    _, artist, name = some_user_and_artist(home)
    by_name = musicrec("similar", name, "-n", "2", home=home).stdout
    by_id = musicrec("similar", artist, "-n", "2", home=home).stdout
    assert by_name == by_id and "similar to" in by_name
    assert "promote" in musicrec("top-users", artist, home=home).stdout


def test_sql_is_read_only(pipeline_home):
    home, _ = pipeline_home
    assert "120" in musicrec("sql", "SELECT count(*) AS n FROM users", home=home).stdout
    refused = musicrec("sql", "DELETE FROM users", home=home, check=False)
    assert refused.returncode == 1 and "read-only" in refused.stderr.lower()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("recommend", "no-such-user"), "unknown user"),
        (("similar", "no-such-artist"), "unknown artist"),
        (("top-users", "no-such-artist"), "unknown artist"),
        (("sql", "SELECT * FROM no_such_table"), "no_such_table"),
    ],
)
def test_clear_one_line_errors(pipeline_home, args, message):
    home, _ = pipeline_home
    result = musicrec(*args, home=home, check=False)
    assert result.returncode == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_empty_warehouse_and_bad_json(tmp_path):
    result = musicrec("recommend", "x", home=tmp_path, check=False)
    assert result.returncode == 1 and "make demo" in result.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("[{")
    result = musicrec("recommend", "--ratings", str(bad), home=tmp_path, check=False)
    assert result.returncode == 1 and "not valid JSON" in result.stderr


def test_run_ingests_and_trains_end_to_end(tmp_path):
    """`musicrec run` on a fresh home, then again: it runs `full_job`, tagged, shows its
    progress and ends with the model beside the baselines; the second run ingests nothing."""
    world = small_world(seed=3)
    write_landing(world, tmp_path / "landing")
    config = tmp_path / "small-grid.yaml"
    # the command's wiring, not model quality: item-kNN at its best (K 400) out-ranks the
    # ranking model on this small world, and the gate would keep the tables from being built
    config.write_text(
        "resources: {settings: {config: {ranks: [4, 8], regularizations: [0.1], n_folds: 2, "
        "neighbours: [25], similarities: [cosine]}}}"
    )
    quiet = musicrec("run", "--config", str(config), home=tmp_path)
    first = quiet.stdout
    assert "(full_job): 3 new landing file(s)" in first and "succeeded" in first
    assert re.search(r"\[1/\d+\] (users|artists)\n", first)  # step i of N, as it starts
    assert re.search(r"\[\d+/\d+\] als_tuning done in \d+\.\d s", first)
    assert "als_tuning: rating trial 2/2" in first
    assert f"ratings/ratings.jsonl: {len(world.ratings)} read" in first
    assert "files ingested by this run: 3" in first
    assert "model musicrec-als v1" in first
    comparison = first[first.index("held-out scores") :].splitlines()
    header = comparison[1].split()  # the headline metrics the run has, in their order
    assert {"rmse", "ndcg_at_10"} <= set(header)
    assert header == [metric for metric in HEADLINE_METRICS if metric in header]
    models = [line.split()[0] for line in comparison[2:8]]
    assert models[:2] == ["ranking", "rating"]
    assert {"bias", "global_mean", "most_popular", "item_knn"} <= set(models)
    assert re.search(r"top 5 for user \S+ \(.+\)", first)
    assert "RUN_START" not in quiet.stdout + quiet.stderr  # Dagster's lines: only --verbose

    verbose = musicrec("run", "--config", str(config), "--verbose", home=tmp_path)
    assert "RUN_START" in verbose.stdout + verbose.stderr
    second = verbose.stdout
    assert "files ingested by this run: 0" in second
    assert "(full_job): 0 new landing file(s)" in second
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster")) as instance:
        runs = instance.get_runs()
    assert [run.job_name for run in runs] == ["full_job", "full_job"]
    assert runs[1].tags["musicrec/trigger"] == "musicrec run"
    assert set(runs[1].tags["musicrec/files"].split(", ")) == {
        "users/users.jsonl",
        "artists/artists.jsonl",
        "ratings/ratings.jsonl",
    }
    assert runs[0].tags["musicrec/files"] == "none new"
    assert (tmp_path / "mlflow.db").exists()


def test_sample_writes_a_landing_folder(tmp_path):
    musicrec("sample", "--out", str(tmp_path / "landing"))
    assert {p.name for p in (tmp_path / "landing").iterdir()} == {"users", "artists", "ratings"}
