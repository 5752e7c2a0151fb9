"""`musicrec run` killed with SIGKILL mid-ingest, mid-training and mid-publication: each next
run marks the dead one failed, frees its `duckdb` slot and goes on, and in the end every file
is ingested once. A run waiting for a live run's slot says what it waits for, never frees that
slot, stops on SIGINT and SIGTERM, and recovers the holder once that is killed."""

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml
from harness import MUSICREC, REPO_ROOT, TINY_RUN, small_world

from musicrec_assets.datasets.synthetic import write_landing
from musicrec_assets.defs.recovery import PID_TAG, slot_holders

# enough files that the kill at the first one ingested lands before the last (the watcher polls
# the event log every 0.1 s; at 4 tiny files a run once finished them all first)
RATINGS_FILES = 8
SERVING_STEPS = {"user_recommendations", "artist_top_users", "similar_artists", "factor_tables"}
SECONDS_TO_POINT = 240
SLOT_HOLDER = REPO_ROOT / "musicrec_assets_tests" / "defs" / "slot_holder.py"


class TinyHome:
    """A home of a small synthetic world, its ratings split over a few files, and the
    `musicrec run` processes started on it."""

    def __init__(self, root: Path):
        self.root = root
        write_landing(small_world(), root / "landing")
        ratings = root / "landing" / "ratings" / "ratings.jsonl"
        lines = ratings.read_text().splitlines(keepends=True)
        for part in range(RATINGS_FILES):
            (ratings.parent / f"part-{part}.jsonl").write_text("".join(lines[part::RATINGS_FILES]))
        ratings.unlink()
        (root / "dagster").mkdir()
        shutil.copyfile(REPO_ROOT / "dagster.yaml", root / "dagster" / "dagster.yaml")
        self.config = root / "tiny-run.yaml"
        self.config.write_text(yaml.safe_dump(TINY_RUN))
        self.started = 0

    def start(self) -> subprocess.Popen:
        self.started += 1
        log = (self.root / f"run-{self.started}.log").open("w")
        command = [MUSICREC, "run", "--home", str(self.root), "--config", str(self.config)]
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
        process.log = Path(log.name)
        return process

    def start_slot_holder(self) -> subprocess.Popen:
        """A live process whose run holds the `duckdb` slot once it gets it, until killed."""
        command = [sys.executable, str(SLOT_HOLDER), str(self.root / "dagster"), "{}", "cli"]
        return subprocess.Popen(command, cwd=REPO_ROOT)

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.root / "dagster"))

    def wait_for(self, process: subprocess.Popen, point, what: str) -> dg.DagsterRun:
        """Poll the home's Dagster event log until ``point(entry)`` holds for an event of the
        run of ``process``."""
        deadline = time.monotonic() + SECONDS_TO_POINT
        with self.instance() as instance:
            while time.monotonic() < deadline:
                assert process.poll() is None, f"ended before {what}:\n{process.log.read_text()}"
                runs = run_of_pid(instance, process.pid)
                if runs and any(point(entry) for entry in instance.all_logs(runs[0].run_id)):
                    return runs[0]
                time.sleep(0.1)
        raise AssertionError(f"no {what} within {SECONDS_TO_POINT} s")

    def kill_at(self, point, what: str) -> dg.DagsterRun:
        process = self.start()
        run = self.wait_for(process, point, what)
        process.kill()
        process.wait()
        with self.instance() as instance:
            # the wedge: the dead run is still STARTED and holds the one duckdb slot
            assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
            assert run.run_id in {run_id for run_id, _ in slot_holders(instance)["duckdb"]}
        assert_tables_readable(self.root)
        return run


def run_of_pid(instance: dg.DagsterInstance, pid: int) -> list[dg.DagsterRun]:
    return instance.get_runs(filters=dg.RunsFilter(tags={PID_TAG: str(pid)}))


def user_log_of(step: str):
    return lambda entry: entry.step_key == step and entry.dagster_event is None


def step_started(steps: set[str]):
    return lambda entry: (
        entry.is_dagster_event
        and (entry.dagster_event_type == dg.DagsterEventType.STEP_START and entry.step_key in steps)
    )


def assert_tables_readable(home: Path) -> None:
    """Every table opens and counts, and the ratings are what the ledger says was accepted."""
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        tables = [
            name for (name,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        ]
        for table in tables:
            con.execute(f'SELECT count(*) FROM "{table}"').fetchall()
        accepted = con.execute(
            "SELECT coalesce(sum(rows_accepted), 0) FROM ingested_files WHERE kind = 'ratings'"
        ).fetchone()[0]
        assert con.execute("SELECT count(*) FROM ratings").fetchone()[0] == accepted


def failure_message(instance: dg.DagsterInstance, run_id: str) -> str:
    [failure] = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    return failure.dagster_event.message


@pytest.mark.slow
def test_killed_runs_never_wedge_the_home(tmp_path):
    home = TinyHome(tmp_path)
    mid_ingest = home.kill_at(user_log_of("ratings"), "a ratings file ingested")
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        done = con.execute("SELECT count(*) FROM ingested_files WHERE kind = 'ratings'").fetchone()
    assert done[0] < RATINGS_FILES, "killed after the ratings were all in: not mid-ingest"
    mid_training = home.kill_at(user_log_of("als_tuning"), "a tuning trial")
    mid_publication = home.kill_at(step_started(SERVING_STEPS), "a publishing step")

    # a live run takes the slot once a next run has recovered the dead one: the runs after it
    # wait, say for what, and never free it
    holder = home.start_slot_holder()
    with home.instance() as instance:

        def queued_first():
            pending = instance.event_log_storage.get_concurrency_info("duckdb").pending_steps
            return pending and run_of_pid(instance, holder.pid)

        wait_until(queued_first)
        [holder_run] = run_of_pid(instance, holder.pid)
    waiting = [home.start() for _ in range(3)]
    told = f"held by run {holder_run.run_id}"
    for process in waiting:
        wait_until(lambda p=process: told in p.log.read_text())
    *interrupted, last = waiting
    for process, signal_number in zip(interrupted, (signal.SIGINT, signal.SIGTERM), strict=True):
        process.send_signal(signal_number)
        assert process.wait(timeout=30) == 128 + signal_number
    with home.instance() as instance:
        assert instance.get_run_by_id(holder_run.run_id).status == dg.DagsterRunStatus.STARTED
    holder.kill()  # now the last run, waiting, recovers it and goes on
    holder.wait()
    assert last.wait(timeout=300) == 0, last.log.read_text()

    output = "".join(process.log.read_text() for process in waiting)
    assert f"recovered run {mid_publication.run_id}" in output
    assert f"recovered run {holder_run.run_id}" in last.log.read_text()
    with home.instance() as instance:
        for dead in (mid_ingest, mid_training, mid_publication, holder_run):
            assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
            assert "abandoned: its process" in failure_message(instance, dead.run_id)
        for process in interrupted:
            [run] = run_of_pid(instance, process.pid)
            assert "interrupted by SIG" in failure_message(instance, run.run_id)
        assert slot_holders(instance)["duckdb"] == []
    assert_tables_readable(tmp_path)
    landed = {
        p.relative_to(tmp_path / "landing").as_posix()
        for p in (tmp_path / "landing").rglob("*.jsonl")
    }
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        ledger = con.execute("SELECT path FROM ingested_files").fetchall()
        assert sorted(path for (path,) in ledger) == sorted(landed)  # each file exactly once
        assert con.execute("SELECT count(*) FROM ratings").fetchone()[0] == len(
            small_world().ratings
        )
        assert con.execute("SELECT count(*) FROM user_recommendations").fetchone()[0] > 0


def wait_until(condition, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.mark.slow
def test_two_first_runs_at_once_on_a_fresh_home_both_succeed(tmp_path):
    """Nothing exists yet (no Dagster storage, MLflow store or warehouse): both runs create
    what they need one at a time, and the files go in once."""
    home = TinyHome(tmp_path)
    shutil.rmtree(tmp_path / "dagster")  # as fresh as a home gets: `musicrec run` makes it
    first, second = home.start(), home.start()
    for process in (first, second):
        assert process.wait(timeout=600) == 0, process.log.read_text()
    with home.instance() as instance:
        runs = instance.get_runs()
        assert {run.status for run in runs} == {dg.DagsterRunStatus.SUCCESS}
        assert len(runs) == 2
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        ledger = con.execute("SELECT path FROM ingested_files").fetchall()
        assert len(ledger) == len(set(ledger)) == RATINGS_FILES + 2  # and users, artists
        assert con.execute("SELECT count(*) FROM ratings").fetchone()[0] == len(
            small_world().ratings
        )
        assert con.execute("SELECT DISTINCT model_version FROM user_recommendations").fetchall()
