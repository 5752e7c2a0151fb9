"""The ``musicrec`` command through its installed entry point."""

import argparse
import gzip
import itertools
import json
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest
from harness import MUSICREC, TINY_RUN, small_world
from scipy.sparse import csr_matrix

from musicrec_assets.cli.main import build_parser, main
from musicrec_assets.cli.summary import HEADLINE_METRICS
from musicrec_assets.datasets.synthetic import write_landing
from musicrec_assets.evaluation.promotion import (
    RANKING_BASELINES,
    RANKING_METRIC,
    RATING_BASELINES,
    RATING_METRIC,
)
from musicrec_assets.model.factors import ModelPair, TrainingParams
from musicrec_assets.model.implicit_als import fit_implicit_als
from musicrec_assets.serving.recommender import Recommender
from musicrec_assets.tracking import registry
from musicrec_assets.warehouse import refresh


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


def rated_names(home, user) -> set[str]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return {
            name
            for (name,) in con.execute(
                "SELECT a.name FROM ratings r JOIN artists a ON a.id = r.artist_id "
                "WHERE r.user_id = ?",
                [user],
            ).fetchall()
        }


def known(home, kind: str, n=3) -> list[tuple[str, str]]:
    """(id, name) of the first ``n`` users or artists (``kind`` "user" or "artist") that the
    champion's lists name: ones the model knows."""
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(
            f"SELECT {kind}_id, any_value({kind}_name) FROM user_recommendations_named "
            f"GROUP BY {kind}_id ORDER BY {kind}_id LIMIT ?",
            [n],
        ).fetchall()


def assert_within_100_columns(text: str):
    assert max(len(line) for line in text.splitlines()) <= 100, text


def test_recommend_shows_names_first_and_ids_on_request(pipeline_home):
    home, _ = pipeline_home
    user, artist, name = some_user_and_artist(home)
    plain = musicrec("recommend", user, "-n", "3", home=home).stdout
    lines = plain.splitlines()
    assert lines[0].startswith("top 3 for ") and "model version 1" in lines[0]
    assert lines[1].split() == ["rank", "artist", "score", "predicted_rating"]
    assert name in lines[2] and artist not in plain
    score, predicted = lines[2].split()[-2:]
    assert re.fullmatch(r"\d\.\d{3}", score) and re.fullmatch(r"\d\.\d{2}", predicted)
    with_ids = musicrec("recommend", user, "-n", "3", "--ids", home=home).stdout
    assert with_ids.splitlines()[1].split()[:3] == ["rank", "artist", "artist_id"]
    assert artist in with_ids
    similar = musicrec("similar", name, "-n", "2", home=home).stdout
    assert similar.splitlines()[1].split() == ["rank", "artist", "similarity"]
    assert_within_100_columns(plain + with_ids + similar)


def test_explain_gives_each_pick_its_own_reasons(pipeline_home):
    home, _ = pipeline_home
    user, _, _ = some_user_and_artist(home)
    out = musicrec("recommend", user, "-n", "5", "--explain", home=home).stdout
    assert_within_100_columns(out)
    why = out[out.index("why:") :]
    assert "every pick draws most on" in why[: why.index("\n  1. ")]
    picks = re.findall(
        r"^  (\d+)\. (.+?): because you rated (.+?)(?=^  \d+\. |\Z)", why, re.MULTILINE | re.DOTALL
    )
    assert [int(rank) for rank, *_ in picks] == [1, 2, 3, 4, 5]
    reasons = [" ".join(listed.split()) for *_, listed in picks]
    assert len(set(reasons)) > 1, reasons  # not the same artists for every pick
    rated = rated_names(home, user)
    for listed in reasons:  # each reason is an artist the user rated, with the rating
        for reason in listed.split(", "):
            assert re.fullmatch(r"(.+) \d(\.\d)?", reason).group(1) in rated, reason


# `recommend USER --explain` in a fresh process, then whether it imported MLflow
EXPLAIN_THEN_MLFLOW_IMPORTED = (
    "import sys; from musicrec_assets.cli.main import main; "
    "assert main(['recommend', '--home', sys.argv[1], sys.argv[2], '--explain']) == 0; "
    "print('mlflow imported:', 'mlflow' in sys.modules)"
)


def test_explain_reads_a_downloaded_copy_without_mlflow(pipeline_home):
    home, _ = pipeline_home
    user, _, _ = some_user_and_artist(home)
    musicrec("recommend", user, "--explain", home=home)  # the copy is downloaded once

    again = subprocess.run(
        [sys.executable, "-c", EXPLAIN_THEN_MLFLOW_IMPORTED, str(home), user],
        capture_output=True,
        text=True,
        check=True,
    )
    # MLflow's import takes longer than the rest of the answer
    assert "why:" in again.stdout and "mlflow imported: False" in again.stdout


# the plain readers, one after another in a fresh process, then what heavy modules they imported
READERS_THEN_HEAVY_IMPORTS = (
    "import sys; from musicrec_assets.cli.main import main; home, user, artist = sys.argv[1:]; "
    "assert main(['recommend', user, '--home', home]) == 0; "
    "assert main(['similar', artist, '--home', home]) == 0; "
    "assert main(['top-users', artist, '--home', home]) == 0; "
    "assert main(['sql', 'SELECT * FROM user_recommendations LIMIT 3', '--home', home]) == 0; "
    "heavy = ('pandas', 'numpy', 'pyarrow', 'scipy', 'mlflow', 'dagster'); "
    "print('heavy imports:', [name for name in heavy if name in sys.modules])"
)


def test_plain_readers_import_nothing_heavy(pipeline_home):
    """Issue 25: `recommend USER`, `similar`, `top-users` and `sql` answer in under 0.3 s, which
    importing pandas alone (0.3-0.4 s on a 2-core machine) would not leave them."""
    home, _ = pipeline_home
    user, artist, _ = some_user_and_artist(home)
    readers = subprocess.run(
        [sys.executable, "-c", READERS_THEN_HEAVY_IMPORTS, str(home), user, artist],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "heavy imports: []" in readers.stdout, readers.stdout


def test_explain_a_folded_in_listener_from_their_stored_ratings(pipeline_home, tmp_path, capsys):
    """A listener the model does not know, whose list a fold-in made, is explained from the
    ratings stored for them (folded in as the fold-in did), as a listener of the model is."""
    home = tmp_path / "home"
    shutil.copytree(pipeline_home[0], home, ignore=shutil.ignore_patterns("*.lock", "landing"))
    twin, _, _ = some_user_and_artist(home)
    registry.use_existing_store(home)
    version, champion = registry.champion_files(home)
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        # the twin's ratings but one, ingested after the champion was trained
        con.execute(
            "INSERT INTO ratings SELECT 'newcomer', artist_id, rating, plays, \"timestamp\", "
            "'ratings/newcomer.jsonl', ? FROM ratings WHERE user_id = ? "
            "ORDER BY artist_id OFFSET 1",
            [datetime.now(UTC).replace(tzinfo=None), twin],
        )
        refresh.fold_in_pending(
            con, champion, version, refresh.pending(con), 5, datetime.now(UTC).replace(tzinfo=None)
        )

    assert main(["recommend", "newcomer", "-n", "5", "--explain", "--home", str(home)]) == 0

    out = capsys.readouterr().out
    assert out.startswith(f"top 5 for newcomer, model version {version}:")
    why = out[out.index("why:") :]
    assert "every pick draws most on" in why[: why.index("\n  1. ")]
    picks = re.findall(r"^  (\d+)\. .+?: because you rated (.+?)(?=^  \d+\. |\Z)", why, re.M | re.S)
    assert [int(rank) for rank, _ in picks] == [1, 2, 3, 4, 5]
    rated = rated_names(home, "newcomer")
    assert rated < rated_names(home, twin)
    for _, listed in picks:
        for reason in " ".join(listed.split()).split(", "):
            assert re.fullmatch(r"(.+) \d(\.\d)?", reason).group(1) in rated, reason


def test_recommend_beyond_the_stored_top_n_says_so(pipeline_home):
    home, _ = pipeline_home
    user, _, name = some_user_and_artist(home)
    result = musicrec("recommend", user, "-n", "100000", home=home)
    assert "keeps the top 5 per user: showing 5, not 100000" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "keeps the top 5 per artist" in musicrec("similar", name, "-n", "50", home=home).stderr
    assert not musicrec("recommend", user, "-n", "5", home=home).stderr
    assert not musicrec("recommend", user, home=home).stderr  # the default 10: nothing to say


@pytest.mark.parametrize("form", ["array", "json lines", "array with a BOM", "gzip'd lines"])
def test_recommend_new_listener_from_a_ratings_file(pipeline_home, tmp_path, form):
    """`--ratings` takes what a landing ratings file may be; --explain goes with it."""
    home, _ = pipeline_home
    (artist, _), (other, _) = known(home, "artist", 2)
    ratings = [
        {"artist_id": artist, "rating": 5},
        {"artist_id": "nope", "rating": 1},
        {"artist_id": other, "rating": 4},
    ]
    if form.startswith("array"):
        content = json.dumps(ratings).encode()
    else:
        content = "\n\n".join(json.dumps(rating) for rating in ratings).encode()
    path = tmp_path / "me.json"
    if form == "array with a BOM":
        content = b"\xef\xbb\xbf" + content
    if form == "gzip'd lines":
        path = tmp_path / "me.jsonl.gz"
        content = gzip.compress(content)
    path.write_bytes(content)
    out = musicrec("recommend", "--ratings", str(path), "-n", "4", "--explain", home=home).stdout
    assert "ignored unknown artist ids: nope" in out
    assert "top 4 for a new listener" in out
    assert out.count("because you rated") == 4


def test_top_users_of_a_new_artist_from_a_ratings_file(pipeline_home, tmp_path):
    """`top-users --ratings`: the artist folded into the champion from known listeners'
    ratings, as its Recommender.for_new_artist places it; the raters left out, an unknown
    user named and left out."""
    home, _ = pipeline_home
    (first, _), (second, _) = known(home, "user", 2)
    ratings = [{"user_id": user, "rating": 5} for user in (first, "nobody", second)]
    path = tmp_path / "new-artist.jsonl"
    path.write_text("\n".join(map(json.dumps, ratings)))
    out = musicrec("top-users", "--ratings", str(path), "-n", "4", "--ids", home=home).stdout
    assert "ignored unknown user ids: nobody" in out
    version = re.search(r"users to promote a new artist to \(model version (\d+)\):", out)[1]
    assert_within_100_columns(out)
    # the champion's files, as the command downloaded them
    (champion,) = (home / "models").glob(f"{version}-*")
    expected = Recommender.from_folder(champion).for_new_artist(ratings, n=4).users["user_id"]
    named = dict(known(home, "user", 1000))
    rows = out.splitlines()[-4:]
    for row, user_id in zip(rows, expected, strict=True):
        assert f"{named[user_id]} {user_id} " in " ".join(row.split())
    assert f" {first} " not in out and f" {second} " not in out


# what a command's --ratings file is of: (command, the id each record rates, a newcomer's
# rated id named twice, a file of two newcomers)
NEWCOMERS = {
    "new listener": ("recommend", "artist", "rated more than once", "2 users"),
    "new artist": ("top-users", "user", "rated it more than once", "2 artists"),
}


@pytest.mark.parametrize("newcomer", NEWCOMERS)
@pytest.mark.parametrize(
    ("content", "words"),
    [
        (  # the same artist (user) named with 5 and 1: refused by name, with both records
            lambda rated, own, a, b: [
                {rated: a, "rating": 5},
                {rated: b, "rating": 3},
                {rated: a, "rating": 1},
            ],
            ["{a_name} ({a}) {repeated} (#1, #3)"],
        ),
        (  # the landing folder's reasons, by record number
            lambda rated, own, a, b: [{rated: a, "rating": 9}, {rated: b, "rating": "4"}, 3],
            [
                "3 of its 3",
                "#1 {a_name} ({a}): rating outside 0.5-5.0",
                "#2 {b_name} ({b}): wrong type: rating must be a number",
                "#3: not a JSON object",
            ],
        ),
        (
            lambda rated, own, a, b: [
                {own: "x", rated: a, "rating": 4},
                {own: "y", rated: b, "rating": 4},
            ],
            ["the ratings of {several}"],
        ),
        (lambda rated, own, a, b: "[" * 100_000 + "]" * 100_000, ["#1: not a JSON object"]),
        (lambda rated, own, a, b: "", ["holds no ratings"]),
        (  # one record that gives its rating twice is refused, as ingest refuses it
            lambda rated, own, a, b: f'[{{"{rated}": "{b}", "rating": 5, "rating": 1}}]',
            ["#1 {b_name} ({b}): a field given twice in the record"],
        ),
    ],
    ids=[
        "named twice",
        "bad records",
        "several newcomers",
        "deeply nested",
        "empty",
        "field twice",
    ],
)
def test_a_ratings_file_is_refused_as_the_landing_folder_refuses_it(
    pipeline_home, tmp_path, content, words, newcomer
):
    home, _ = pipeline_home
    command, rated, repeated, several = NEWCOMERS[newcomer]
    own = "artist" if rated == "user" else "user"
    (a, a_name), (b, b_name) = known(home, rated, 2)
    records = content(f"{rated}_id", f"{own}_id", a, b)
    path = tmp_path / "me.json"
    path.write_text(records if isinstance(records, str) else json.dumps(records))
    result = musicrec(command, "--ratings", str(path), home=home, check=False)
    assert result.returncode == 1 and not result.stdout
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    for word in words:
        said = word.format(
            a=a, a_name=a_name, b=b, b_name=b_name, repeated=repeated, several=several
        )
        assert said in result.stderr


def test_a_new_artist_is_one_line_where_the_champion_cannot_place_it(monkeypatch, tmp_path, capsys):
    """bm25 confidence needs each listener's total plays, which a model does not keep."""
    plays = csr_matrix(np.random.default_rng(0).integers(0, 4, (30, 12)).astype(float))
    user_ids = np.array([f"u{row}" for row in range(30)])
    item_ids = np.array([f"a{column}" for column in range(12)])
    params = TrainingParams("ranking", rank=3, regularization=1.0, iterations=2, confidence="bm25")
    model = fit_implicit_als(plays, params).with_ids(user_ids, item_ids)
    names = pd.DataFrame({"artist_id": item_ids, "name": item_ids})
    bm25 = Recommender(ModelPair(model), plays, names)
    # musicrec_assets.cli exports the function `main` under the module's name
    command_module = sys.modules[main.__module__]
    monkeypatch.setattr(command_module, "_published_recommender", lambda home: ("7", bm25))
    path = tmp_path / "new-artist.json"
    path.write_text(json.dumps([{"user_id": "u1", "plays": 12}]))

    status = main(["top-users", "--ratings", str(path), "--home", str(tmp_path)])

    assert status == 1
    assert capsys.readouterr().err == (
        "musicrec: model version 7 cannot place a new artist: its ranking model's bm25 "
        "confidence needs each listener's totals, which it does not keep\n"
    )


USAGE = {
    "recommend": "recommend takes a USER_ID or --ratings FILE (a new listener), one of them",
    "top-users": "top-users takes an ARTIST or --ratings FILE (a new artist), one of them",
}


@pytest.mark.parametrize(
    "args",
    [
        ["recommend", "someone", "--ratings", "me.json"],
        ["recommend"],
        ["recommend", "--explain"],
        ["top-users", "someone", "--ratings", "me.json"],
        ["top-users", "--ids"],
    ],
    ids=" ".join,
)
def test_a_reader_takes_an_id_or_ratings_not_both(args):
    result = musicrec(*args, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == f"musicrec: {USAGE[args[0]]}"


def test_every_flag_has_help_and_the_top_help_no_markup():
    (commands,) = [
        action
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    ]
    undocumented = [
        f"{name} {action.dest}"
        for name, command in commands.choices.items()
        for action in command._actions
        if not action.help
    ]
    assert not undocumented
    top = musicrec("--help").stdout
    assert "``" not in top and "musicrec recommend USER_ID --explain" in top


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
        # an unknown table: the ones there are
        (("sql", "FROM no_such_table"), "tables artist_factors, "),
        (("sql", "FROM no_such_table"), "views artist_top_users_named, "),
    ],
)
def test_clear_one_line_errors(pipeline_home, args, message):
    home, _ = pipeline_home
    result = musicrec(*args, home=home, check=False)
    assert result.returncode == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_empty_warehouse(tmp_path):
    result = musicrec("recommend", "x", home=tmp_path, check=False)
    assert result.returncode == 1 and "make demo" in result.stderr


def test_run_ingests_and_trains_end_to_end(tmp_path):
    """`musicrec run` on a fresh home, then again: it runs `full_job`, tagged, shows its
    progress and ends with the model beside the baselines; the second run ingests nothing."""
    world = small_world(seed=3)
    write_landing(world, tmp_path / "landing")
    config = tmp_path / "small-grid.yaml"
    # the command's wiring, not model quality: one point of each model
    config.write_text(json.dumps(TINY_RUN))
    quiet = musicrec("run", "--config", str(config), home=tmp_path)
    first = quiet.stdout
    assert "(full_job): 3 new landing file(s)" in first and "succeeded" in first
    assert re.search(r"\[1/\d+\] (users|artists)\n", first)  # step i of N, as it starts
    assert re.search(r"\[\d+/\d+\] als_tuning done in \d+\.\d s", first)
    assert re.search(r"als_tuning: rating trial \d", first)  # an asset's own messages
    assert f"ratings/ratings.jsonl: {len(world.ratings)} read" in first
    assert "files ingested by this run: 3" in first
    assert "model musicrec-als v1" in first
    comparison = first[first.index("held-out scores") :].splitlines()
    header = comparison[1].split()  # the headline metrics the run has, in their order
    assert {"rmse", "ndcg_at_10"} <= set(header)
    assert header == [metric for metric in HEADLINE_METRICS if metric in header]
    rows = itertools.takewhile(lambda line: line.startswith("  "), comparison[2:])
    models = [line.split()[0] for line in rows]
    # ours first: the lists as published, the ranking model alone where they blend, the rating
    ours = (
        ["ranking", "ranking_alone", "rating"]
        if "ranking_alone" in models
        else ["ranking", "rating"]
    )
    assert models[: len(ours)] == ours
    assert {"bias", "global_mean", "most_popular", "item_knn"} <= set(models)
    assert_the_ending_gives_a_verdict(first)
    # checks named once; no library chatter between the lines of the progress
    assert re.search(r"\[\d+/\d+\] check users_id_unique\n", first)
    assert "users_users_id_unique" not in first
    for chatter in ("RUN_START", "Successfully registered model", "Created version"):
        assert chatter not in quiet.stdout + quiet.stderr  # Dagster's, MLflow's: --verbose only

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


def assert_the_ending_gives_a_verdict(out: str):
    """Our models against their best baseline in words, with the numbers of the table above;
    a listener's top 5 by name; what to try next."""
    lines = out.splitlines()
    start = lines.index("held-out scores (the same split for every model):")
    header = lines[start + 1].split()
    table = {}
    for line in lines[start + 2 :]:
        if not line.startswith("  ") or not line.strip():
            break
        model, *values = line.split()
        table[model] = dict(zip(header, values, strict=True))
    for role, metric, baselines, higher in (
        ("ranking", RANKING_METRIC, RANKING_BASELINES, True),
        ("rating", RATING_METRIC, RATING_BASELINES, False),
    ):
        best = (max if higher else min)(baselines, key=lambda name: float(table[name][metric]))
        ours, theirs = table[role][metric], table[best][metric]
        verb = "beats" if (float(ours) > float(theirs)) == higher else "does not beat"
        (verdict,) = [line for line in lines if line.startswith(f"verdict: the {role} model")]
        assert verdict.startswith(f"verdict: the {role} model {verb} the best baseline, ")
        assert f" on held-out ratings ({ours} vs {theirs}, " in verdict, verdict
    assert re.search(
        r"^top 5 for .+ \(user \S+\); `musicrec recommend --home \S+ \S+ --explain`", out, re.M
    )
    ending = out[out.index("\nnext") :]
    assert "make ui" in ending and "make mlflow" in ending
    assert re.search(r'musicrec sql --home \S+ "SELECT .* LIMIT 10"', ending)


def test_sample_writes_a_landing_folder_and_says_what_next(tmp_path):
    out = musicrec("sample", "--out", str(tmp_path / "landing")).stdout
    assert {p.name for p in (tmp_path / "landing").iterdir()} == {"users", "artists", "ratings"}
    lines = out.splitlines()
    assert re.search(r": 300 users, 10,000 artists, 30,000 ratings$", lines[0])
    assert lines[1] == f"next: musicrec run --home {tmp_path}"
