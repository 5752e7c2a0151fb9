"""`musicrec run` waits for a landing file still being written (as the landing sensor does)
instead of ingesting half of it, and an empty or read-only home ends in one line."""

import json
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml
from harness import MUSICREC, REPO_ROOT, TINY_RUN, small_world

from musicrec_assets.cli import preflight
from musicrec_assets.datasets.synthetic import write_landing
from musicrec_assets.warehouse import feedback_kind
from musicrec_assets.warehouse.tables import ensure_schema


class SlowWriter(threading.Thread):
    """Appends ratings to a landing file, each line in two writes a moment apart, until told
    to finish the line it is on and stop."""

    def __init__(self, path: Path, records: list[dict]):
        super().__init__(daemon=True)
        self.path, self.records, self.finish, self.written = path, records, threading.Event(), 0

    def run(self):
        with self.path.open("w") as stream:
            for record in self.records:
                line = json.dumps(record) + "\n"
                stream.write(line[: len(line) // 2])
                stream.flush()
                time.sleep(0.2)
                stream.write(line[len(line) // 2 :])
                stream.flush()
                self.written += 1
                if self.finish.is_set():
                    return
                time.sleep(0.2)


def late_ratings(world, count: int) -> list[dict]:
    rated = set(zip(world.ratings.user_id, world.ratings.artist_id, strict=True))
    pairs = (
        (user, artist)
        for user in world.users.id
        for artist in world.artists.id
        if (user, artist) not in rated
    )
    return [
        {"user_id": user, "artist_id": artist, "rating": 3.5, "timestamp": 2_000_000_000}
        for _, (user, artist) in zip(range(count), pairs, strict=False)
    ]


@pytest.mark.slow
def test_run_waits_for_a_file_still_being_written(tmp_path):
    world = small_world()
    write_landing(world, tmp_path / "landing")
    config = tmp_path / "tiny-run.yaml"
    config.write_text(yaml.safe_dump(TINY_RUN))
    writer = SlowWriter(tmp_path / "landing" / "ratings" / "late.jsonl", late_ratings(world, 600))
    writer.start()
    log = tmp_path / "run.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [MUSICREC, "run", "--home", str(tmp_path), "--config", str(config)],
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while not re.search(r"waiting for .*ratings/late\.jsonl.* to hold still", log.read_text()):
            # today the run ingests the file as it is, half a record last
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline and writer.is_alive(), log.read_text()
            time.sleep(0.2)
        writer.finish.set()
        writer.join()
        assert process.wait(timeout=600) == 0, log.read_text()
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM rejected_rows").fetchone()[0] == 0
        [(read, accepted)] = con.execute(
            "SELECT rows_read, rows_accepted FROM ingested_files WHERE path = 'ratings/late.jsonl'"
        ).fetchall()
    assert read == accepted == writer.written


@pytest.mark.slow
def test_a_file_that_appears_after_the_check_is_not_ingested_half_written(tmp_path):
    """The check found the landing folder at rest; a writer starts a file line by line just
    after it. The run's ingest steps take the files the check approved (its manifest tag),
    so that file waits for the next run, which takes it whole, once."""
    world = small_world()
    write_landing(world, tmp_path / "landing")
    config = tmp_path / "tiny-run.yaml"
    config.write_text(yaml.safe_dump(TINY_RUN))
    writer = SlowWriter(tmp_path / "landing" / "ratings" / "late.jsonl", late_ratings(world, 600))
    log = tmp_path / "run.log"
    command = [MUSICREC, "run", "--home", str(tmp_path), "--config", str(config)]
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while not re.search(r"run \S+ \(full_job\)", log.read_text()):  # the check is done
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        writer.start()
        assert process.wait(timeout=600) == 0, log.read_text()
    writer.finish.set()
    writer.join()
    assert subprocess.run(command, cwd=REPO_ROOT, capture_output=True).returncode == 0
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM rejected_rows").fetchone()[0] == 0
        ledger = con.execute(
            "SELECT rows_read, rows_accepted FROM ingested_files WHERE path = 'ratings/late.jsonl'"
        ).fetchall()
    assert ledger == [(writer.written, writer.written)]


@pytest.mark.parametrize(
    ("name", "shown"),
    [("growing.jsonl", "growing.jsonl"), ("grow\ning.jsonl", "grow\\ning.jsonl")],
    ids=["plain", "a newline in the name"],  # which broke the one line in two
)
def test_waiting_for_writers_ends_in_a_clear_error_when_a_file_keeps_changing(
    tmp_path, name, shown
):
    growing = tmp_path / "ratings" / name
    growing.parent.mkdir()
    writer = SlowWriter(growing, [{"user_id": "u", "artist_id": "a", "rating": 1}] * 100)
    writer.start()
    time.sleep(0.3)
    said = []
    with pytest.raises(ValueError, match="^" + re.escape(f"ratings/{shown} still being written")):
        preflight.wait_for_writers(tmp_path, 3, say=lambda line, **_: said.append(line))
    writer.finish.set()
    writer.join()
    assert said == [f"waiting for ratings/{shown} to hold still (written in the last 2 s)"]


def test_a_landing_folder_at_rest_costs_no_wait(tmp_path):
    rested = tmp_path / "users" / "u.jsonl"
    rested.parent.mkdir()
    rested.write_text('{"id": "a"}\n')
    os.utime(rested, (time.time() - 60, time.time() - 60))
    started = time.monotonic()
    preflight.wait_for_writers(tmp_path, 30, say=pytest.fail)
    assert time.monotonic() - started < 1


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()[-1:]
    assert line.startswith("musicrec: ")
    return line


def test_run_on_an_empty_home_is_one_line(tmp_path):
    result = subprocess.run(
        [MUSICREC, "run", "--home", str(tmp_path / "new")], capture_output=True, text=True
    )
    assert "nothing to train on" in one_line_error(result)


@pytest.fixture
def used_home(tmp_path):
    """A home with landing files and a Dagster instance."""
    write_landing(small_world(), tmp_path / "landing")
    (tmp_path / "dagster").mkdir()
    shutil.copyfile(REPO_ROOT / "dagster.yaml", tmp_path / "dagster" / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster")) as instance:
        instance.get_runs()
    yield tmp_path
    for path in [tmp_path, *tmp_path.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)


def run_read_only(home: Path) -> subprocess.CompletedProcess:
    """`musicrec run` on ``home`` made read-only: by its modes, or, for root (whom modes do
    not stop), by a read-only bind mount in a mount namespace of its own."""
    command = [MUSICREC, "run", "--home", str(home)]
    if os.geteuid() != 0:
        for path in [home, *home.rglob("*")]:
            path.chmod(path.stat().st_mode & ~0o222)
        return subprocess.run(command, capture_output=True, text=True)
    if shutil.which("unshare") is None:
        pytest.skip("root, and no unshare to mount the home read-only")
    mount = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" || exit 99; shift; exec "$@"'
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", mount, "sh", str(home), *command],
        capture_output=True,
        text=True,
    )
    if result.returncode == 99:
        pytest.skip(f"cannot mount the home read-only here: {result.stderr.strip()}")
    return result


def test_run_on_a_read_only_home_is_one_line(used_home):
    assert f"cannot write {used_home}" in one_line_error(run_read_only(used_home))


def test_a_feedback_setting_the_home_refuses_is_the_runs_last_line(tmp_path):
    """Issue 27's variant of item 3: `feedback: implicit` on a home of ratings failed the
    ratings step with a bare "Error occurred while executing op" and "FAILED (see the lines
    above)", the reason (and what to do) left in the step's trace."""
    (tmp_path / "pipeline").mkdir()
    with duckdb.connect(str(tmp_path / "pipeline" / "warehouse.duckdb")) as con:
        ensure_schema(con)
        feedback_kind.decide(con, "explicit", "an earlier ratings file")
    ratings = tmp_path / "landing" / "ratings" / "1.jsonl"
    ratings.parent.mkdir(parents=True)
    ratings.write_text(json.dumps({"user_id": "u", "artist_id": "a", "plays": 3}) + "\n")
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump({"resources": {"settings": {"config": {"feedback": "implicit"}}}})
    )
    result = subprocess.run(
        [MUSICREC, "run", "--home", str(tmp_path), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    line = one_line_error(result)
    assert "feedback: implicit in the settings, but this home holds ratings" in line
    assert "start a new MUSICREC_HOME" in line
