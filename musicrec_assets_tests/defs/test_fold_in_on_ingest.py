"""Fold-in on ingest (issue 23), with real runs: an ingest run alone refreshes the lists of the
listeners it brought ratings for; the retrain sensor retrains only past its threshold; a retrain
puts the model's rows back."""

import json
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
from harness import FAST_SETTINGS, fast_settings, run_pipeline, small_world
from scipy.sparse import csr_matrix

from musicrec_assets.datasets.synthetic import write_landing
from musicrec_assets.definitions import build_definitions
from musicrec_assets.defs.automation import landing_sensor, retrain_sensor
from musicrec_assets.defs.ingest.assets import ratings
from musicrec_assets.defs.resources import MusicrecHome
from musicrec_assets.model.factors import ModelPair
from musicrec_assets.serving import fold_in

NEW_LISTENER = "fold-in-newcomer"


def query(home: Path, sql: str, params=None):
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def run_job(home, instance, name):
    result = (
        build_definitions(home, FAST_SETTINGS)
        .resolve_job_def(name)
        .execute_in_process(instance=instance, raise_on_error=False)
    )
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return result


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records))


def lists(home: Path, user_id: str) -> list[tuple]:
    return query(
        home,
        "SELECT artist_id, source, model_version FROM user_recommendations "
        "WHERE user_id = ? ORDER BY rank",
        [user_id],
    )


@pytest.fixture(scope="module")
def folded(tmp_path_factory):
    """A trained home, then an ingest run of a new listener (a copy of a known listener's
    ratings) and of a known listener's ratings of the first three artists of their list."""
    home = tmp_path_factory.mktemp("fold_in_home")
    world = small_world(seed=11)
    write_landing(world, home / "landing")
    instance = dg.DagsterInstance.ephemeral()
    full = run_job(home, instance, "full_job")
    [(version,)] = query(home, "SELECT DISTINCT model_version FROM user_recommendations")
    model = query(home, "SELECT DISTINCT source FROM user_recommendations")

    twin, known = world.users.id.iloc[0], world.users.id.iloc[1]
    before = {user: lists(home, user) for user in (twin, known)}
    twin_ratings = world.ratings[world.ratings.user_id == twin]
    just_rated = [artist for artist, _, _ in before[known][:3]]
    write_jsonl(home / "landing" / "users" / "new.jsonl", [{"id": NEW_LISTENER}])
    write_jsonl(
        home / "landing" / "ratings" / "new.jsonl",
        [
            {"user_id": NEW_LISTENER, "artist_id": row.artist_id, "rating": row.rating}
            for row in twin_ratings.itertuples()
        ]
        + [{"user_id": known, "artist_id": artist, "rating": 5.0} for artist in just_rated],
    )
    ingest = run_job(home, instance, "ingest_job")
    return {
        "home": home,
        "instance": instance,
        "ingest": ingest,
        "full": full,
        "version": version,
        "model_sources": model,
        "twin": twin,
        "known": known,
        "before": before,
        "just_rated": just_rated,
        "world": world,
    }


def test_an_ingest_run_alone_gives_a_new_listener_a_list_from_the_champion(folded):
    home, version = folded["home"], folded["version"]
    assert folded["model_sources"] == [("model",)]
    ran = {
        e.asset_key.to_user_string() for e in folded["ingest"].get_asset_materialization_events()
    }
    assert "als_model" not in ran and "user_recommendations" not in ran
    newcomer = lists(home, NEW_LISTENER)
    assert len(newcomer) == FAST_SETTINGS.top_n
    assert {(source, v) for _, source, v in newcomer} == {("fold_in", version)}
    # folded in from the same ratings, the newcomer gets (nearly) their twin's trained list
    twin = {artist for artist, _, _ in folded["before"][folded["twin"]]}
    assert len(twin & {artist for artist, _, _ in newcomer}) >= 3
    rated = set(folded["world"].ratings.query("user_id == @folded['twin']").artist_id)
    assert not rated & {artist for artist, _, _ in newcomer}
    [(refreshed, created)] = query(
        home,
        "SELECT DISTINCT refreshed_at, created_at FROM user_recommendations WHERE user_id = ?",
        [NEW_LISTENER],
    )
    [(ingested,)] = query(
        home, "SELECT max(ingested_at) FROM ratings WHERE user_id = ?", [NEW_LISTENER]
    )
    assert refreshed == created and refreshed >= ingested
    [event] = folded["ingest"].asset_materializations_for_node("ratings")
    assert event.metadata["fold_in_listeners"].value == 2


def test_a_run_that_rebuilds_the_tables_folds_nothing_in(folded):
    [event] = folded["full"].asset_materializations_for_node("ratings")
    assert event.metadata["fold_in"].value.startswith("not needed")


def test_fold_in_rows_carry_the_rating_models_prediction(folded):
    predicted = query(
        folded["home"],
        "SELECT predicted_rating FROM user_recommendations WHERE user_id = ?",
        [NEW_LISTENER],
    )
    assert len(predicted) == FAST_SETTINGS.top_n
    assert all(0.0 < value < 6.0 for (value,) in predicted)


def test_artists_rated_since_get_an_audience_without_their_new_listeners(folded):
    home, known = folded["home"], folded["known"]
    for artist in folded["just_rated"]:
        audience = query(
            home,
            "SELECT user_id, source FROM artist_top_users WHERE artist_id = ? ORDER BY rank",
            [artist],
        )
        assert len(audience) == FAST_SETTINGS.top_n
        assert {source for _, source in audience} == {"fold_in"}
        listeners = query(home, "SELECT user_id FROM ratings WHERE artist_id = ?", [artist])
        assert (known,) in listeners
        assert not {user for (user,) in listeners} & {user for user, _ in audience}
    [event] = folded["ingest"].asset_materializations_for_node("ratings")
    # the known listener's three and the twin's artists, all known to the champion
    assert event.metadata["fold_in_artists"].value >= len(folded["just_rated"])


def test_a_known_listener_gets_a_new_list_without_what_they_just_rated(folded):
    home, known = folded["home"], folded["known"]
    after = lists(home, known)
    assert len(after) == FAST_SETTINGS.top_n
    assert {source for _, source, _ in after} == {"fold_in"}
    assert not set(folded["just_rated"]) & {artist for artist, _, _ in after}
    stored = {
        artist
        for (artist,) in query(home, "SELECT artist_id FROM ratings WHERE user_id = ?", [known])
    }
    assert not stored & {artist for artist, _, _ in after}
    # everyone else keeps the model's rows
    others = query(
        home,
        "SELECT DISTINCT source FROM user_recommendations WHERE user_id NOT IN (?, ?)",
        [known, NEW_LISTENER],
    )
    assert others == [("model",)]


DROPPED_ARTISTS = "SELECT DISTINCT artist_id FROM ratings WHERE source_file = 'ratings/new.jsonl'"


def test_folded_in_listeners_enter_the_audiences_of_artists_they_outscore(folded):
    """An artist no one rated in the drop: a folded-in listener is among its top users, by
    their new score, exactly when they score above its lowest."""
    home, version = folded["home"], folded["version"]
    (champion,) = (home / "models").glob(f"{version}-*")  # as the fold-in downloaded it
    ranking = ModelPair.load(champion, "factors").ranking
    listeners = [NEW_LISTENER, folded["known"]]
    stored = pd.DataFrame(
        query(
            home,
            "SELECT user_id, artist_id, rating FROM ratings WHERE user_id IN (?, ?)",
            listeners,
        ),
        columns=["user_id", "artist_id", "rating"],
    )
    interactions = csr_matrix(
        (
            stored.rating.to_numpy(float),
            (
                pd.Index(listeners).get_indexer(stored.user_id),
                pd.Index(ranking.item_ids).get_indexer(stored.artist_id),
            ),
        ),
        shape=(len(listeners), ranking.n_items),
    )
    scores = fold_in.new_user_vectors(ranking, interactions) @ ranking.item_vectors().T
    dropped = {artist for (artist,) in query(home, DROPPED_ARTISTS)}  # folded in themselves
    rated = set(zip(stored.user_id, stored.artist_id, strict=True))
    audiences: dict[str, dict[str, float]] = {}
    for artist, user, score in query(
        home, "SELECT artist_id, user_id, score FROM artist_top_users"
    ):
        audiences.setdefault(artist, {})[user] = score
    entered = 0
    for column, artist in enumerate(ranking.item_ids):
        audience = audiences.get(artist, {})
        if artist in dropped:
            continue
        assert len(audience) == FAST_SETTINGS.top_n
        for row, user in enumerate(listeners):
            if (user, artist) in rated:
                assert user not in audience
            elif user in audience:
                assert audience[user] == pytest.approx(scores[row, column], rel=1e-4)
                entered += user == NEW_LISTENER
            else:
                assert scores[row, column] <= min(audience.values()) + 1e-5
    assert entered > 0


def retrain_tick(folded, **settings):
    home = folded["home"]
    context = dg.build_sensor_context(
        instance=folded["instance"],
        resources={
            "settings": fast_settings(**settings),
            "home": MusicrecHome(path=str(home)),
        },
        definitions=build_definitions(home, FAST_SETTINGS),
    )
    return retrain_sensor.evaluate_tick(context)


def test_the_threshold_decides_between_fold_in_and_retrain(folded):
    """The drop is the twin's ratings again and 3 more: ``arrived`` of the ``seen`` the
    champion was trained on."""
    arrived = len(folded["world"].ratings.query("user_id == @folded['twin']")) + 3
    seen = len(folded["world"].ratings)
    below = retrain_tick(folded, retrain_share=0.9 * arrived / seen)
    assert len(below.run_requests) == 1
    above = retrain_tick(folded, retrain_share=1.1 * arrived / seen)
    assert above.run_requests == []
    assert f"{arrived} rating(s) since v{folded['version']}" in above.skip_message
    assert len(retrain_tick(folded, retrain_ratings=arrived).run_requests) == 1
    assert retrain_tick(folded, retrain_ratings=arrived + 1).run_requests == []
    # either threshold passed is enough
    assert len(retrain_tick(folded, retrain_share=1.0, retrain_ratings=arrived).run_requests) == 1
    # the default: a drop this small (a listener's ratings) is fold-in's, not a retrain's
    assert arrived / seen < 0.1
    assert "(retrain at 10.0%)" in retrain_tick(folded).skip_message
    # neither set: every ingest run that brought ratings retrains, as before the thresholds
    assert len(retrain_tick(folded, retrain_share=None).run_requests) == 1


def landing_tick(folded):
    context = dg.build_sensor_context(
        instance=folded["instance"], resources={"home": MusicrecHome(path=str(folded["home"]))}
    )
    return landing_sensor(context)


def test_rows_a_rebuild_dropped_are_folded_in_again_at_the_next_landing_tick(folded):
    home = folded["home"]
    assert isinstance(landing_tick(folded), dg.SkipReason)  # nothing waits
    # the tables rebuilt from the same champion, as when a retrain's version does not win
    tables = [dg.AssetKey("user_recommendations"), dg.AssetKey("artist_top_users")]
    assert run_pipeline(home, FAST_SETTINGS, selection=tables).success
    assert lists(home, NEW_LISTENER) == []
    request = landing_tick(folded)
    assert isinstance(request, dg.RunRequest) and request.asset_selection == [ratings.key]
    job = build_definitions(home, FAST_SETTINGS).resolve_job_def("ingest_job")
    result = job.execute_in_process(
        instance=folded["instance"], asset_selection=request.asset_selection, tags=request.tags
    )
    assert result.success
    [event] = result.asset_materializations_for_node("ratings")
    assert event.metadata["new_files"].value == 0
    assert {source for _, source, _ in lists(home, NEW_LISTENER)} == {"fold_in"}
    assert {source for _, source, _ in lists(home, folded["known"])} == {"fold_in"}
    assert isinstance(landing_tick(folded), dg.SkipReason)


def test_a_retrain_replaces_the_fold_in_rows_with_the_model_rows(folded):
    home = folded["home"]
    run_job(home, folded["instance"], "retrain_job")
    [(version,)] = query(home, "SELECT DISTINCT model_version FROM user_recommendations")
    assert int(version) > int(folded["version"])
    assert query(home, "SELECT DISTINCT source FROM user_recommendations") == [("model",)]
    newcomer = lists(home, NEW_LISTENER)
    assert len(newcomer) == FAST_SETTINGS.top_n
    assert not set(folded["just_rated"]) & {artist for artist, _, _ in lists(home, folded["known"])}
