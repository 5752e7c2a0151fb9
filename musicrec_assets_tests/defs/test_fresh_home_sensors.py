"""A fresh home fed only through the landing folder: the landing sensor's ingest run, then the
retrain sensor's run, end with published tables and no failed run (it tunes first)."""

import json

import dagster as dg
import duckdb
from harness import FAST_SETTINGS, small_world

from musicrec_assets.datasets.synthetic import write_landing
from musicrec_assets.definitions import build_definitions
from musicrec_assets.defs.automation import landing_sensor, retrain_sensor
from musicrec_assets.defs.resources import MusicrecHome


def execute(defs: dg.Definitions, instance, job_name: str, request: dg.RunRequest):
    """Execute a sensor's run request as the daemon would launch it, in this process."""
    job = defs.resolve_job_def(job_name)
    return job.execute_in_process(
        instance=instance, asset_selection=request.asset_selection, tags=request.tags
    )


def test_sensors_bring_a_fresh_home_to_published_tables(tmp_path):
    world = small_world(seed=5)
    write_landing(world, tmp_path / "landing")
    defs = build_definitions(tmp_path, FAST_SETTINGS)
    instance = dg.DagsterInstance.ephemeral()

    def tick(sensor, cursor=None):
        context = dg.build_sensor_context(
            instance=instance,
            cursor=cursor,
            resources={"home": MusicrecHome(path=str(tmp_path)), "settings": FAST_SETTINGS},
            definitions=defs,
        )
        return sensor.evaluate_tick(context)

    # files written over 2 s before the first look are ready at once; fresher ones at the second
    first_look = tick(landing_sensor)
    [ingest] = first_look.run_requests or tick(landing_sensor, first_look.cursor).run_requests
    assert execute(defs, instance, landing_sensor.job_name, ingest).success

    training_tick = tick(retrain_sensor)
    [training] = training_tick.run_requests
    result = execute(defs, instance, retrain_sensor.job_name, training)
    assert result.success  # today: RuntimeError "no tuning yet: materialize als_tuning first"
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"als_tuning", "als_model", "user_recommendations", "similar_artists"} <= materialized
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        served = con.execute("SELECT count(DISTINCT user_id) FROM user_recommendations").fetchone()
    assert served[0] == len(world.users)
    failed = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
    assert failed == []

    # tuned now: the next retrain reuses the tuning (retrain_job as it is). One rating is far
    # below the default retrain share, but its artist is new: fold-in cannot place it
    (tmp_path / "landing" / "artists" / "more.jsonl").write_text(
        json.dumps({"id": "a-new", "name": "A New Artist"}) + "\n"
    )
    unrated = world.ratings.iloc[0][["user_id"]].to_dict() | {
        "artist_id": "a-new",
        "rating": 4.5,
        "timestamp": 2_000_000_000,
    }
    (tmp_path / "landing" / "ratings" / "more.jsonl").write_text(json.dumps(unrated) + "\n")
    assert defs.resolve_job_def("ingest_job").execute_in_process(instance=instance).success
    [retrain] = tick(retrain_sensor, training_tick.cursor).run_requests
    assert retrain.asset_selection is None
