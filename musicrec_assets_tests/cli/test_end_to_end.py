"""The real thing: `dagster dev` (webserver + daemon) picks up a dropped file on its own.

Loopback only; every process started here is stopped at the end.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from harness import (
    FAST_SETTINGS,
    REPO_ROOT,
    TRAINING_ASSETS,
    dagster_dev_env,
    free_port,
    small_world,
)

from musicrec_assets.datasets.synthetic import write_landing
from musicrec_assets.definitions import build_definitions
from musicrec_assets.warehouse import landing

DEADLINE_SECONDS = 300


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["data"]


def served_versions(home: Path) -> set[str]:
    try:
        with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
            return {
                v
                for (v,) in con.execute(
                    "SELECT DISTINCT model_version FROM user_recommendations"
                ).fetchall()
            }
    except duckdb.Error:  # not built yet, or a run holds the write lock right now
        return set()


def assert_taken_at_the_first_look_after_it_settled(home: Path, dropped: float) -> None:
    """The landing sensor requested the dropped file's ingest run at its first tick once the
    file had not been written to for ``landing.SETTLE_SECONDS``, not a tick later; prints the
    way from the drop to the run (a figure of docs/automation.md, here at 5 s ticks)."""
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        [sensor] = [
            state
            for state in instance.all_instigator_state()
            if state.instigator_name == "landing_sensor"
        ]
        ticks = instance.get_ticks(sensor.instigator_origin_id, sensor.selector_id)
        [run] = instance.get_run_records(dg.RunsFilter(job_name="ingest_job"))
        stats = instance.get_run_stats(run.dagster_run.run_id)
    [requested] = [tick for tick in ticks if run.dagster_run.run_id in tick.run_ids]
    settled = dropped + landing.SETTLE_SECONDS
    assert requested.timestamp <= min(tick.timestamp for tick in ticks if tick.timestamp >= settled)
    print(
        f"drop → ingest run requested {requested.timestamp - dropped:.1f} s, started "
        f"{stats.start_time - dropped:.1f} s, ended {stats.end_time - dropped:.1f} s"
    )


def wait_for(predicate, what: str, process: subprocess.Popen, deadline: float):
    while not predicate():
        assert process.poll() is None, f"dagster dev exited while waiting for {what}"
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(2)


@pytest.fixture
def tuned_home(tmp_path):
    """Data ingested and tuned, no model yet: the first model comes from the sensors."""
    world = small_world(seed=11)
    held_back = world.ratings.sample(frac=0.1, random_state=0)
    world = type(world)(world.users, world.artists, world.ratings.drop(held_back.index))
    write_landing(world, tmp_path / "landing")
    selection = [key for key in TRAINING_ASSETS if key.to_user_string() != "als_model"]
    job = build_definitions(tmp_path, FAST_SETTINGS).resolve_implicit_global_asset_job_def()
    assert job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), asset_selection=selection
    ).success
    return tmp_path, world, held_back


def test_dropped_file_is_ingested_and_served_by_the_running_daemon(tuned_home):
    home, world, held_back = tuned_home
    port = free_port()
    env = dagster_dev_env(home)
    log = (home / "dagster-dev.log").open("w")
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("dagster")),
            "dev",
            "-w",
            "workspace.yaml",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + DEADLINE_SECONDS
    try:

        def webserver_up():
            try:
                return graphql(port, "{ version }")["version"] is not None
            except OSError:
                return False

        wait_for(webserver_up, "the webserver", process, deadline)
        assert served_versions(home) == set()

        staging = home / "staging"
        write_landing(type(world)(world.users, world.artists, held_back), staging)
        part = home / "landing" / "ratings" / "late.jsonl.part"
        shutil.copyfile(staging / "ratings" / "ratings.jsonl", part)
        part.rename(part.with_suffix(""))
        dropped = time.time()

        wait_for(lambda: served_versions(home) == {"1"}, "new recommendations", process, deadline)
        with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
            ledger = con.execute(
                "SELECT rows_accepted FROM ingested_files WHERE path = 'ratings/late.jsonl'"
            ).fetchall()
        assert ledger == [(len(held_back),)]

        def run_statuses() -> set[tuple[str, str]]:
            runs = graphql(port, "{ runsOrError { ... on Runs { results { jobName status } } } }")
            return {(r["jobName"], r["status"]) for r in runs["runsOrError"]["results"]}

        finished = {"SUCCESS", "FAILURE", "CANCELED"}
        wait_for(
            lambda: all(status in finished for _, status in run_statuses()),
            "the runs to finish",
            process,
            deadline,
        )
        statuses = run_statuses()
        assert ("ingest_job", "SUCCESS") in statuses
        assert ("retrain_job", "SUCCESS") in statuses
        assert all(status == "SUCCESS" for _, status in statuses), statuses
        assert_taken_at_the_first_look_after_it_settled(home, dropped)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
