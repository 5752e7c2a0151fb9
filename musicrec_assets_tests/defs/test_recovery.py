"""Crash recovery on real processes: a run whose processes were killed is failed and its pool
slot freed (by a sensor tick); a live run, or one of another host, is never touched."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from harness import REPO_ROOT

from musicrec_assets.defs.automation import landing_sensor
from musicrec_assets.defs.recovery import (
    HOST_TAG,
    host_tags,
    process_alive,
    recover_abandoned_runs,
    slot_holders,
    start_ticks,
)
from musicrec_assets.defs.resources import MusicrecHome

NAME_TAG = "test/name"
SLOT_HOLDER = Path(__file__).with_name("slot_holder.py")


def test_process_alive_tells_live_dead_zombie_and_reused_pids():
    assert process_alive(os.getpid(), start_ticks(os.getpid()))
    reaped = subprocess.Popen(["sleep", "60"])
    reaped.kill()
    reaped.wait()
    assert not process_alive(reaped.pid)
    zombie = subprocess.Popen(["sleep", "60"])
    zombie.kill()
    time.sleep(0.5)  # killed, not reaped: its pid still answers os.kill(pid, 0)
    assert not process_alive(zombie.pid)
    zombie.wait()
    if start_ticks(os.getpid()) is not None:  # a pid reused by another process
        assert not process_alive(os.getpid(), str(int(start_ticks(os.getpid())) - 1))


@pytest.fixture
def instance_dir(tmp_path):
    directory = tmp_path / "dagster"
    directory.mkdir()
    shutil.copyfile(REPO_ROOT / "dagster.yaml", directory / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(directory)) as instance:
        instance.get_runs()  # create the storage before several processes race to
    return directory


def start_holder(instance_dir: Path, name: str, tags: dict, kind: str = "job"):
    tags = {**tags, NAME_TAG: name}
    return subprocess.Popen(
        [sys.executable, str(SLOT_HOLDER), str(instance_dir), json.dumps(tags), kind],
        cwd=REPO_ROOT,
    )


def run_named(instance: dg.DagsterInstance, name: str) -> dg.DagsterRun | None:
    runs = instance.get_runs(filters=dg.RunsFilter(tags={NAME_TAG: name}))
    return runs[0] if runs else None


def wait_until(condition, what: str, seconds: float = 120):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {seconds} s"
        time.sleep(0.2)


@pytest.mark.slow
def test_a_sensor_tick_fails_dead_runs_and_frees_their_slots_never_a_live_one(
    instance_dir, tmp_path
):
    processes = []
    try:
        with dg.DagsterInstance.from_config(str(instance_dir)) as instance:

            def holder_of_the_slot():
                holders = slot_holders(instance).get("duckdb", [])
                return holders and instance.get_run_by_id(holders[0][0]).tags[NAME_TAG]

            def waiting(name):
                run = run_named(instance, name)
                pending = instance.event_log_storage.get_concurrency_info("duckdb").pending_steps
                return run is not None and run.run_id in {step.run_id for step in pending}

            dead = start_holder(instance_dir, "dead", host_tags())
            processes.append(dead)
            wait_until(lambda: holder_of_the_slot() == "dead", "slot held by the first run")
            dead.kill()
            dead.wait()
            # both wait for the slot, the live one first in the queue
            live = start_holder(instance_dir, "live", {}, kind="cli")
            processes.append(live)
            wait_until(lambda: waiting("live"), "the live run waiting")
            elsewhere = start_holder(instance_dir, "elsewhere", {HOST_TAG: "another-host"})
            processes.append(elsewhere)
            wait_until(lambda: waiting("elsewhere"), "the other host's run waiting")
            elsewhere.kill()
            elsewhere.wait()
            assert holder_of_the_slot() == "dead"  # the wedge: a dead run holds the one slot

            context = dg.build_sensor_context(
                instance=instance, resources={"home": MusicrecHome(path=str(tmp_path))}
            )
            landing_sensor(context)

            first = run_named(instance, "dead")
            assert first.status == dg.DagsterRunStatus.FAILURE
            [failure] = instance.all_logs(first.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
            assert f"process (pid {dead.pid} on host" in failure.dagster_event.message
            # its slot went to a waiting run; the other host's run is left as it was
            wait_until(lambda: holder_of_the_slot() == "live", "the slot passed on")
            assert run_named(instance, "elsewhere").status == dg.DagsterRunStatus.STARTED
            assert run_named(instance, "live").status == dg.DagsterRunStatus.STARTED
            assert recover_abandoned_runs(instance) == []  # the live run is never judged dead
            assert live.poll() is None
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait()
