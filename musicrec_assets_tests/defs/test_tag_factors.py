"""Artists nobody has rated yet, placed by their tags: after a run a tagged artist without
ratings has `artist_factors` rows marked `tags` (when the mapping passes its gate on the
champion's own data), and rows of `artist_top_users` and `similar_artists` marked so;
withheld when the tags are noise; once rated and retrained, `ratings`."""

import json
import subprocess

import dagster as dg
import duckdb
import mlflow
import numpy as np
import pandas as pd
from harness import MUSICREC, fast_settings, run_pipeline

from musicrec_assets.definitions import build_definitions
from musicrec_assets.tracking import registry as tracking

N_USERS, N_ARTISTS, N_GENRES, SYNONYMS, N_NEW = 200, 400, 5, 4, 6
SETTINGS = fast_settings(
    feedback="implicit",
    ranks=[8],
    regularizations=[1.0],
    alphas=[1.0],
    confidences=["log1p"],
    neighbours=[5],
)


def write_tagged_world(landing, informative: bool, seed: int = 3) -> list[str]:
    """Users who play within their favourite genres; every artist tagged with one of its
    genre's synonymous tags (or, for noise, a random genre's), and ``N_NEW`` more artists with
    tags and no plays. Returns the new artists' ids."""
    rng = np.random.default_rng(seed)
    n_all = N_ARTISTS + N_NEW
    genre = rng.integers(N_GENRES, size=n_all)
    taste = rng.dirichlet(np.full(N_GENRES, 0.3), size=N_USERS)
    popularity = rng.pareto(2.0, N_ARTISTS) + 0.2
    plays = rng.poisson(taste[:, genre[:N_ARTISTS]] * popularity * 0.3)
    tagged_as = genre if informative else rng.integers(N_GENRES, size=n_all)
    synonym = rng.integers(SYNONYMS, size=n_all)
    artists = [
        {"id": f"a{i}", "tags": {f"Genre {tagged_as[i]}-{synonym[i]}": int(rng.integers(1, 5))}}
        for i in range(n_all)
    ]
    ratings = [
        {"user_id": f"u{u}", "artist_id": f"a{i}", "plays": int(plays[u, i])}
        for u, i in zip(*np.nonzero(plays), strict=True)
    ]
    for kind, records in (
        ("users", [{"id": f"u{u}"} for u in range(N_USERS)]),
        ("artists", artists),
        ("ratings", ratings),
    ):
        (landing / kind).mkdir(parents=True, exist_ok=True)
        (landing / kind / f"{kind}.jsonl").write_text(
            "".join(json.dumps(record) + "\n" for record in records)
        )
    return [f"a{i}" for i in range(N_ARTISTS, n_all)]


def query(home, sql, params=None):
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def factor_metadata(result) -> dict:
    events = result.asset_materializations_for_node("factor_tables")
    [event] = [e for e in events if e.asset_key.path[-1] == "artist_factors"]
    return {key: value.value for key, value in event.metadata.items()}


def test_a_tagged_artist_without_ratings_gets_factors_from_its_tags(tmp_path):
    new = write_tagged_world(tmp_path / "landing", informative=True)
    result = run_pipeline(tmp_path, SETTINGS)
    assert result.success
    rated = {row[0] for row in query(tmp_path, "SELECT DISTINCT artist_id FROM ratings")}
    by_source = query(
        tmp_path, "SELECT source, list(DISTINCT artist_id) FROM artist_factors GROUP BY 1"
    )
    placed = dict(by_source)
    assert set(placed["ratings"]) == rated
    # every artist with tags and no plays: the new ones and the few the draw gave none
    unrated = {f"a{i}" for i in range(N_ARTISTS + N_NEW)} - rated
    assert set(placed["tags"]) == unrated and set(new) <= unrated
    metadata = factor_metadata(result)
    assert metadata["from_tags"].startswith("published")
    # one row per model, as the trained artists have, of the same width
    assert query(
        tmp_path,
        "SELECT DISTINCT model, len(factors) FROM artist_factors WHERE source = 'tags' ORDER BY 1",
    ) == query(
        tmp_path,
        "SELECT DISTINCT model, len(factors) FROM artist_factors WHERE source = 'ratings' "
        "ORDER BY 1",
    )
    # a placed artist scores highest with the listeners of its genre's artists: its nearest
    # trained artist by the published factors carries a tag of its genre
    nearest = query(
        tmp_path,
        """SELECT n.artist_id, arg_max(t.artist_id, list_cosine_similarity(n.factors::FLOAT[],
                                                                         t.factors::FLOAT[]))
           FROM artist_factors n JOIN artist_factors t USING (model)
           WHERE n.source = 'tags' AND t.source = 'ratings' AND model = 'ranking'
           GROUP BY 1""",
    )
    genre_tags = query(tmp_path, "SELECT artist_id, tag FROM artist_tags")
    genre_of = {artist: tag.split("-")[0] for artist, tag in genre_tags}
    agree = sum(genre_of[a] == genre_of[b] for a, b in nearest)
    assert agree >= len(unrated) - 1

    # the published lists hold the placed artists, marked as artist_factors marks them: their
    # audience (nobody listens to them yet) and their trained neighbours
    audiences = query(
        tmp_path,
        "SELECT artist_id, count(*), list(DISTINCT source) FROM artist_top_users "
        "WHERE artist_id IN (SELECT unnest(?::VARCHAR[])) GROUP BY 1",
        [sorted(unrated)],
    )
    assert {row[0] for row in audiences} == unrated
    top_n = SETTINGS.top_n
    assert all(count == top_n and sources == ["tags"] for _, count, sources in audiences)
    assert query(
        tmp_path,
        "SELECT DISTINCT source FROM artist_top_users "
        "WHERE artist_id NOT IN (SELECT unnest(?::VARCHAR[]))",
        [sorted(unrated)],
    ) == [("model",)]
    lists = query(
        tmp_path,
        """SELECT artist_source, similar_artist_source, count(DISTINCT s.artist_id),
                  bool_and(artist_source = f.source), bool_and(similar_artist_source = g.source)
           FROM similar_artists s
           JOIN artist_factors f ON f.artist_id = s.artist_id AND f.model = 'ranking'
           JOIN artist_factors g ON g.artist_id = s.similar_artist_id AND g.model = 'ranking'
           GROUP BY ALL ORDER BY ALL""",
    )
    by_kind = {(row[0], row[1]): row[2:] for row in lists}
    # a trained artist's list holds a placed one where it ranks (here the 80 trained artists of
    # its genre rank first: serving/test_placed_artists.py); two placed artists are never
    # each other's neighbours
    assert {("ratings", "ratings"), ("tags", "ratings")} <= set(by_kind)
    assert ("tags", "tags") not in by_kind
    assert all(consistent[1:] == (True, True) for consistent in by_kind.values())
    assert by_kind[("tags", "ratings")][0] == len(unrated)
    # the named views show the artists' top tags
    assert query(
        tmp_path,
        "SELECT DISTINCT top_tags, artist_source FROM similar_artists_named WHERE artist_id = ?",
        [new[1]],
    ) == [([tag for artist, tag in genre_tags if artist == new[1]], "tags")]

    # the command line answers for a placed artist from the tables: its neighbours, its audience
    for command, count in (("similar", top_n), ("top-users", top_n)):
        shown = subprocess.run(
            [MUSICREC, command, new[1], "-n", str(count), "--ids", "--home", str(tmp_path)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "placed by its tags" in shown
        listed = [line for line in shown.splitlines() if line.lstrip()[:1].isdigit()]
        assert len(listed) == count, shown
    similar = subprocess.run(
        [MUSICREC, "similar", new[1], "-n", "3", "--ids", "--home", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    neighbours = [a for a in genre_of if a in similar.split() and a != new[1]]
    assert sum(genre_of[a] == genre_of[new[1]] for a in neighbours) >= 2, similar

    # so does the registered model, wherever it is served: the placed artists travel with it
    tracking.configure(tmp_path)
    served = mlflow.pyfunc.load_model(f"models:/{tracking.REGISTERED_MODEL}@champion")
    answer = served.predict(pd.DataFrame([{"artist_id": new[1], "n": top_n}]))
    audience = query(
        tmp_path, "SELECT user_id FROM artist_top_users WHERE artist_id = ? ORDER BY rank", [new[1]]
    )
    assert answer.user_id.tolist() == [user for (user,) in audience]

    # a listener of a placed artist's audience rates one more artist of their favourite genre:
    # folded in by the ingest run alone, they keep their place in its audience, now by their
    # folded-in score (as they would in a trained artist's)
    [(fan, fan_score)] = query(
        tmp_path,
        "SELECT user_id, score FROM artist_top_users WHERE artist_id = ? AND rank = 1",
        [new[1]],
    )
    [(liked,)] = query(
        tmp_path,
        "SELECT artist_id FROM artist_top_users WHERE user_id = ? AND source = 'model' "
        "ORDER BY score DESC LIMIT 1",
        [fan],
    )
    (tmp_path / "landing" / "ratings" / "fan.jsonl").write_text(
        json.dumps({"user_id": fan, "artist_id": liked, "plays": 3}) + "\n"
    )
    ingest = (
        build_definitions(tmp_path, SETTINGS)
        .resolve_job_def("ingest_job")
        .execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    )
    assert ingest.success
    audience = query(
        tmp_path,
        "SELECT user_id, source FROM artist_top_users WHERE artist_id = ? ORDER BY rank",
        [new[1]],
    )
    assert len(audience) == top_n and (fan, "fold_in") in audience, (audience, fan_score)

    # the new artist is rated, and the next run trains on it: its row comes from ratings
    first = new[0]
    more = "".join(
        json.dumps({"user_id": f"u{u}", "artist_id": first, "plays": 3}) + "\n" for u in range(20)
    )
    (tmp_path / "landing" / "ratings" / "more.jsonl").write_text(more)
    assert run_pipeline(tmp_path, SETTINGS).success
    assert query(
        tmp_path, "SELECT DISTINCT source FROM artist_factors WHERE artist_id = ?", [first]
    ) == [("ratings",)]
    still = query(tmp_path, "SELECT DISTINCT artist_id FROM artist_factors WHERE source = 'tags'")
    assert {row[0] for row in still} == unrated - {first}
    # and so do its rows of the lists
    [marks] = query(
        tmp_path,
        """SELECT (SELECT list(DISTINCT source) FROM artist_top_users WHERE artist_id = $1),
                  (SELECT list(DISTINCT artist_source) FROM similar_artists
                   WHERE artist_id = $1),
                  (SELECT list(DISTINCT similar_artist_source) FROM similar_artists
                   WHERE similar_artist_id = $1)""",
        [first],
    )
    assert marks[:2] == (["model"], ["ratings"]) and marks[2] in (None, ["ratings"])


def test_the_gate_withholds_factors_from_tags_that_are_noise(tmp_path):
    write_tagged_world(tmp_path / "landing", informative=False)
    result = run_pipeline(tmp_path, SETTINGS)
    assert result.success
    assert query(tmp_path, "SELECT DISTINCT source FROM artist_factors") == [("ratings",)]
    metadata = factor_metadata(result)
    assert metadata["from_tags"].startswith("withheld")
    assert metadata["artists_from_tags"] == 0
    # the rest is published as ever: every artist a trained one, every row marked so
    assert query(tmp_path, "SELECT count(*) > 0 FROM similar_artists") == [(True,)]
    assert query(tmp_path, "SELECT DISTINCT source FROM artist_top_users") == [("model",)]
    assert query(
        tmp_path,
        "SELECT DISTINCT artist_source, similar_artist_source FROM similar_artists",
    ) == [("ratings", "ratings")]
