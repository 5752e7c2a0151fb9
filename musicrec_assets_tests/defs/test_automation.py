"""Sensors, schedule and concurrency, with Dagster's test helpers."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from harness import FAST_SETTINGS, small_world

from musicrec_assets.backends.spark.als import missing_spark_requirement
from musicrec_assets.datasets.synthetic import write_landing
from musicrec_assets.definitions import build_definitions
from musicrec_assets.defs.automation import landing_sensor, retrain_schedule, retrain_sensor
from musicrec_assets.defs.resources import ModelSettings, MusicrecHome
from musicrec_assets.warehouse import landing


def drop(home: Path, relative: str, records: list[dict]) -> Path:
    path = home / "landing" / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


class LandingSensor:
    """Ticks of the landing sensor, carrying the cursor like the daemon does."""

    def __init__(self, home: Path):
        self.home, self.cursor = home, None
        self.instance = dg.DagsterInstance.ephemeral()

    def tick(self):
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            resources={"home": MusicrecHome(path=str(self.home))},
        )
        result = landing_sensor(context)
        self.cursor = context.cursor
        return result


def test_no_new_file_no_run(tmp_path):
    sensor = LandingSensor(tmp_path)
    assert isinstance(sensor.tick(), dg.SkipReason)
    drop(tmp_path, "users/u.jsonl", [{"id": "a"}])
    assert isinstance(sensor.tick(), dg.SkipReason)  # just written: wait for it to hold still
    assert isinstance(sensor.tick(), dg.RunRequest)
    assert isinstance(sensor.tick(), dg.SkipReason)  # already requested


def test_a_file_no_one_wrote_to_lately_is_taken_at_the_first_tick(tmp_path):
    sensor = LandingSensor(tmp_path)
    dropped = drop(tmp_path, "users/u.jsonl", [{"id": "a"}])
    settled = time.time() - landing.SETTLE_SECONDS - 1
    os.utime(dropped, (settled, settled))  # as written a while before the tick, or moved in
    request = sensor.tick()
    assert isinstance(request, dg.RunRequest)
    assert request.tags["musicrec/files"] == "users/u.jsonl"


def test_two_files_arriving_together_make_one_run(tmp_path):
    sensor = LandingSensor(tmp_path)
    drop(tmp_path, "users/u.jsonl", [{"id": "a"}])
    drop(tmp_path, "ratings/r.jsonl", [{"user_id": "a", "artist_id": "x", "rating": 3}])
    sensor.tick()
    request = sensor.tick()
    assert isinstance(request, dg.RunRequest)
    assert request.tags["musicrec/files"] == "users/u.jsonl, ratings/r.jsonl"


def test_half_written_file_waits_until_complete(tmp_path):
    sensor = LandingSensor(tmp_path)
    path = drop(tmp_path, "ratings/r.jsonl", [{"user_id": "a", "artist_id": "x", "rating": 3}])
    drop(tmp_path, "ratings/big.jsonl.part", [{"user_id": "b"}])
    sensor.tick()
    with path.open("a") as stream:  # the writer is still appending
        stream.write(json.dumps({"user_id": "a", "artist_id": "y", "rating": 4}) + "\n")
    assert isinstance(sensor.tick(), dg.SkipReason)
    request = sensor.tick()
    assert request.tags["musicrec/files"] == "ratings/r.jsonl"  # the .part file never goes


def test_changed_file_is_requested_again(tmp_path):
    sensor = LandingSensor(tmp_path)
    path = drop(tmp_path, "users/u.jsonl", [{"id": "a"}])
    sensor.tick()
    first = sensor.tick()
    os.utime(path, ns=(10**18, 10**18))  # an mtime of 2001: no one is writing it
    second = sensor.tick()
    assert isinstance(second, dg.RunRequest) and second.run_key != first.run_key


def test_ready_files_is_pure_and_remembers():
    file = landing.LandingFile("users", Path("/x"), "users/u.jsonl", 10, 1)
    just_written = 1 + int(landing.SETTLE_SECONDS * 1e9)  # the clock at a look
    first = landing.ready_files([file], {}, {}, now_ns=just_written)
    assert first.ready == [] and first.pending == {"users/u.jsonl": "10:1"}
    second = landing.ready_files([file], first.requested, first.pending, now_ns=just_written)
    assert second.ready == [file] and second.requested == {"users/u.jsonl": "10:1"}
    # unchanged since the last SETTLE_SECONDS: ready at the first look
    later = landing.ready_files([file], {}, {}, now_ns=just_written + 1)
    assert later.ready == [file] and later.pending == {}


@pytest.fixture
def instance_home(tmp_path):
    write_landing(small_world(seed=5), tmp_path / "landing")
    return tmp_path, dg.DagsterInstance.ephemeral()


def run_job(home, instance, name):
    job = build_definitions(home, FAST_SETTINGS).resolve_job_def(name)
    result = job.execute_in_process(instance=instance)
    assert result.success
    return result


def retrain_tick(home, instance, cursor=None):
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"settings": FAST_SETTINGS, "home": MusicrecHome(path=str(home))},
        definitions=build_definitions(home, FAST_SETTINGS),
    )
    result = retrain_sensor.evaluate_tick(context)
    return result.run_requests, result.cursor


def test_retrain_follows_new_ratings_but_not_a_redropped_file(instance_home):
    home, instance = instance_home
    run_job(home, instance, "ingest_job")
    requests, cursor = retrain_tick(home, instance)
    assert len(requests) == 1 and retrain_sensor.job_name == "retrain_job"
    assert retrain_tick(home, instance, cursor)[0] == []  # nothing new since
    ratings_file = next((home / "landing" / "ratings").iterdir())
    (home / "landing" / "ratings" / "copy.jsonl").write_bytes(ratings_file.read_bytes())
    run_job(home, instance, "ingest_job")
    assert retrain_tick(home, instance, cursor)[0] == []


def test_retrain_ignores_runs_that_train_anyway(instance_home):
    home, instance = instance_home
    run_job(home, instance, "full_job")
    assert retrain_tick(home, instance)[0] == []


def test_schedule_defaults_to_daily_3am_utc_and_runs_everything():
    assert retrain_schedule.cron_schedule == "0 3 * * *"
    assert retrain_schedule.execution_timezone == "UTC"
    assert retrain_schedule.job_name == "full_job"
    assert retrain_schedule.default_status == dg.DefaultScheduleStatus.RUNNING


def test_retrain_job_reuses_tuned_params(instance_home):
    home, instance = instance_home
    run_job(home, instance, "full_job")
    result = run_job(home, instance, "retrain_job")
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "als_tuning" not in materialized and "als_model" in materialized
    assert "user_recommendations" in materialized


@pytest.mark.skipif(
    missing_spark_requirement() is not None, reason=str(missing_spark_requirement())
)
def test_failing_step_leaves_tables_and_champion_and_next_run_recovers(instance_home):
    home, instance = instance_home
    run_job(home, instance, "full_job")
    import duckdb

    def served():
        with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
            return con.execute(
                "SELECT model_version, count(*) FROM user_recommendations GROUP BY ALL"
            ).fetchall()

    before = served()
    # a step that fails at run time: training on a Spark master that does not exist
    broken = ModelSettings(backend="spark")
    job = build_definitions(home, broken).resolve_job_def("retrain_job")
    nowhere = {"resources": {"spark": {"config": {"master": "nowhere://spark"}}}}
    result = job.execute_in_process(instance=instance, run_config=nowhere, raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    # the split is the first step that starts a Spark session on that backend
    assert failure.step_key == "evaluation_split"
    assert served() == before
    recovered = run_job(home, instance, "retrain_job")
    [model] = recovered.asset_materializations_for_node("als_model")
    assert model.metadata["model_version"].value == "2"  # the failed run registered nothing
    assert served() == before  # the same data and params do not beat the champion


def test_two_runs_at_once_both_succeed_with_the_multiprocess_executor(tmp_path):
    """Two processes launch runs at once; the `duckdb` pool serializes their writers."""
    write_landing(small_world(seed=9), tmp_path / "landing")
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    repo_root = Path(__file__).resolve().parents[2]
    (dagster_home / "dagster.yaml").write_text((repo_root / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        instance.get_runs()  # create the instance's sqlite storage before two processes race to
    env = {**os.environ, "MUSICREC_HOME": str(tmp_path), "DAGSTER_HOME": str(dagster_home)}
    multiprocess = tmp_path / "multiprocess.yaml"
    multiprocess.write_text("execution:\n  config:\n    multiprocess: {}\n")
    command = [
        str(Path(sys.executable).with_name("dagster")),
        "job",
        "execute",
        "-m",
        "musicrec_assets.definitions",
        "-j",
        "ingest_job",
        "-c",
        str(multiprocess),
    ]
    runs = [
        subprocess.Popen(
            command,
            env=env,
            cwd=repo_root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs[0][-3000:]
    assert all("RUN_SUCCESS" in output for output in outputs)
    assert all("multiprocess" in output for output in outputs)
