"""Processes that open a fresh home's MLflow store at the same moment: the store is created
and migrated once, whichever starts first, and every one of them goes on with it."""

import sqlite3
import subprocess
import sys
import time

import pytest

from musicrec_assets.tracking import registry

# each process imports MLflow first (seconds), then waits for "go" so that all of them reach
# the store's creation at the same instant, as two `musicrec run` started together do
CONFIGURE = """
import sys
import time
from pathlib import Path
from musicrec_assets.tracking import registry
print("ready", flush=True)
sys.stdin.readline()
print(registry.configure(Path(sys.argv[1])), flush=True)
"""


def spawn_configure(home) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CONFIGURE, str(home)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until_ready(process: subprocess.Popen) -> None:
    assert process.stdout.readline().strip() == "ready", process.stderr.read()


def go(process: subprocess.Popen) -> None:
    process.stdin.write("go\n")
    process.stdin.flush()


def configure_at_once(home, processes: int) -> list[subprocess.CompletedProcess]:
    started = [spawn_configure(home) for _ in range(processes)]
    try:
        for process in started:
            wait_until_ready(process)
        for process in started:
            go(process)
        return [
            subprocess.CompletedProcess(p.args, p.wait(timeout=120), *p.communicate())
            for p in started
        ]
    finally:
        for process in started:
            process.kill()


@pytest.mark.parametrize("attempt", range(3))
def test_concurrent_first_configures_all_succeed_on_one_store(tmp_path, attempt):
    results = configure_at_once(tmp_path, processes=2)
    assert [r.returncode for r in results] == [0, 0], [r.stderr[-2000:] for r in results]
    experiment_ids = {r.stdout.strip().splitlines()[-1] for r in results}
    assert len(experiment_ids) == 1
    with sqlite3.connect(tmp_path / "mlflow.db") as store:
        (experiments,) = store.execute(
            "SELECT count(*) FROM experiments WHERE name = 'musicrec'"
        ).fetchone()
        tables = {name for (name,) in store.execute("SELECT name FROM sqlite_master")}
    assert experiments == 1
    assert not {name for name in tables if name.startswith("_alembic_tmp")}
    # a later process opens the finished store as it is
    assert registry.configure(tmp_path) in experiment_ids


def test_a_creation_killed_midway_leaves_no_half_migrated_store(tmp_path):
    """On the code before the lock, a kill 2 s into the migrations left a store that every
    later process failed on (``table registered_models already exists``)."""
    process = spawn_configure(tmp_path)
    try:
        wait_until_ready(process)
        go(process)
        deadline = time.monotonic() + 60
        while not any(p.stat().st_size for p in tmp_path.glob("mlflow.db*")):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.05)
        time.sleep(1.5)  # inside the migrations, which take seconds
    finally:
        process.kill()
        process.wait()
    assert registry.configure(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db", "mlflow.db.lock"]
