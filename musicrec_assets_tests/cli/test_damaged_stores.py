"""Issue 27 item 10: a damaged store of the home ends a command in one line that names the
file and what to do (exit status 2, no traceback), and a damaged copy of the warehouse is made
whole again from the other copy, by `musicrec run`, a reader, or a step of any run."""

import contextlib
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import dagster as dg
import duckdb
import pytest
from copied_home import a_user, copy_home
from dagster._core.storage.event_log import SqliteEventLogStorage
from harness import MUSICREC, REPO_ROOT

from musicrec_assets.cli import preflight
from musicrec_assets.defs.resources import warehouse_resource
from musicrec_assets.home import Home, check_sqlite
from musicrec_assets.warehouse.tables import DamagedStore

GARBAGE = os.urandom(256 * 1024)


@pytest.fixture
def home(pipeline_home, tmp_path):
    return copy_home(pipeline_home[0], tmp_path / "home")


def musicrec(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MUSICREC, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )


def refusal(result: subprocess.CompletedProcess) -> str:
    """The one line a command ended with, exit status 2 and no traceback."""
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    assert result.returncode == 2, result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("musicrec: ")
    return line


def test_random_bytes_in_the_mlflow_store(home):
    (home / "mlflow.db").write_bytes(GARBAGE)
    line = refusal(musicrec("run", "--home", str(home)))
    assert f"{home / 'mlflow.db'} is damaged (not a SQLite database)" in line
    assert "restore it" in line and "move it aside" in line
    explained = musicrec("recommend", a_user(home), "--explain", "--home", str(home))
    assert f"{home / 'mlflow.db'} is damaged" in refusal(explained)


def test_a_damaged_optuna_store_is_named_before_a_run_starts(home):
    (home / "optuna.db").write_bytes(b"\0" * 100)
    with pytest.raises(DamagedStore, match=f"{home / 'optuna.db'} is damaged .*move it aside"):
        preflight.check_stores(Home(home), home / "dagster")


def replace_with_a_directory(path):
    """A directory where the store was, holding a file (someone's, to be kept)."""
    path.unlink()
    path.mkdir()
    (path / "kept").write_text("mine")


@pytest.mark.parametrize("damaged", ["random bytes", "a directory"])
def test_a_reader_publishes_a_damaged_warehouse_again_from_the_working_copy(home, damaged):
    """A directory in the warehouse's place was a bare "[Errno 21] Is a directory" for every
    reader and run (issue 27's variants): it is set aside, as a damaged working copy is."""
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        ratings = con.execute("SELECT count(*) FROM ratings").fetchone()[0]
    if damaged == "a directory":
        replace_with_a_directory(home / "warehouse.duckdb")
    else:
        (home / "warehouse.duckdb").write_bytes(GARBAGE)
    result = musicrec("sql", "SELECT count(*) AS n FROM ratings", "--home", str(home))
    assert result.returncode == 0, result.stderr
    assert str(ratings) in result.stdout
    assert "published again from the runs' working copy" in result.stderr
    if damaged == "a directory":
        [aside] = home.glob("warehouse.duckdb.damaged-*")
        assert (aside / "kept").read_text() == "mine"


def test_a_directory_in_place_of_a_sqlite_store_is_named(home):
    replace_with_a_directory(home / "mlflow.db")
    with pytest.raises(
        DamagedStore,
        match=re.escape(f"{home / 'mlflow.db'} is damaged (a directory, not a file): restore it"),
    ):
        preflight.check_stores(Home(home), home / "dagster")


def test_a_fifo_in_place_of_the_working_copy_is_restored_without_waiting(home):
    """Opening a FIFO to read its header waits for a writer forever: a store's path is looked
    at before it is opened."""
    working = home / "pipeline" / "warehouse.duckdb"
    working.unlink()
    os.mkfifo(working)
    told = []
    checking = threading.Thread(
        target=preflight.check_stores,
        args=(Home(home), home / "dagster"),
        kwargs={"say": lambda line, **_: told.append(line)},
        daemon=True,  # left behind, blocked, where the check opens the FIFO
    )
    checking.start()
    checking.join(timeout=30)
    assert not checking.is_alive(), "the check waits on the FIFO"
    assert "(not a regular file): set aside" in told[0]
    with duckdb.connect(str(working), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM ratings").fetchone()[0] > 0


def test_musicrec_run_publishes_a_damaged_warehouse_again_before_it_starts(home):
    (home / "warehouse.duckdb").write_bytes(GARBAGE)
    told = []
    preflight.check_stores(Home(home), home / "dagster", say=lambda line, **_: told.append(line))
    assert "published again" in told[0]
    # what the run reads before it starts (the files to ingest, whether there is anything to
    # train on) now reads
    preflight.require_ratings(Home(home))


def test_a_step_restores_a_damaged_working_copy_from_the_published_one(home):
    working = home / "pipeline" / "warehouse.duckdb"
    working.write_bytes(GARBAGE)
    started = time.monotonic()
    with warehouse_resource(Home(home)).get_connection() as con:
        assert con.execute("SELECT count(*) FROM ratings").fetchone()[0] > 0
    # not DuckDB's ten retries of an unreadable file (about 100 s), then a bare failure
    assert time.monotonic() - started < 20
    [aside] = (home / "pipeline").glob("warehouse.duckdb.damaged-*")
    assert aside.read_bytes() == GARBAGE


def test_both_copies_damaged_is_one_line_at_once(home):
    for path in (home / "warehouse.duckdb", home / "pipeline" / "warehouse.duckdb"):
        path.write_bytes(GARBAGE)
    started = time.monotonic()
    line = refusal(musicrec("run", "--home", str(home)))
    assert time.monotonic() - started < 60
    assert "no whole copy to restore it from" in line and "restore it from a backup" in line
    assert "no whole copy" in refusal(musicrec("sql", "SELECT 1", "--home", str(home)))


MID_COMMIT_WRITER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA cache_size = 1")  # changed pages reach the file before the commit
db.execute("BEGIN IMMEDIATE")
db.execute("UPDATE runs SET name = name || '-changed'")
print("mid-commit", flush=True)
time.sleep(120)
"""


def test_a_writer_killed_mid_commit_leaves_a_whole_store(tmp_path):
    """The CI failure of stop 29: a run killed while MLflow committed left mlflow.db's
    journal, and the next run called the store damaged (a read-only connection cannot roll a
    journal back). The store is whole: the check rolls the journal back and goes on."""
    store = tmp_path / "mlflow.db"
    with sqlite3.connect(store) as db:
        db.execute("CREATE TABLE runs (name TEXT)")
        db.executemany("INSERT INTO runs VALUES (?)", [(f"run {i}" * 20,) for i in range(2000)])
    db.close()
    writer = subprocess.Popen(
        [sys.executable, "-c", MID_COMMIT_WRITER, str(store)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout.readline().strip() == "mid-commit"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert (tmp_path / "mlflow.db-journal").exists()
    check_sqlite(store, "restore it")
    with contextlib.closing(sqlite3.connect(store)) as db:
        names = [name for (name,) in db.execute("SELECT name FROM runs")]
    assert len(names) == 2000 and not any(name.endswith("-changed") for name in names)


CREATING_WRITER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")  # the file exists, its first page is not written yet
print("created", flush=True)
time.sleep(120)
"""


def test_a_store_killed_before_its_first_commit_is_filled_by_the_next_run(home):
    """The CI failure of stop 30: a run killed while Dagster made its run index left
    index.db empty, and the next run called it damaged. SQLite reads an empty file as an empty
    database; Dagster's run storage makes its tables in it."""
    history = home / "dagster" / "history" / "runs"
    shutil.rmtree(history, ignore_errors=True)
    history.mkdir(parents=True)
    writer = subprocess.Popen(
        [sys.executable, "-c", CREATING_WRITER, str(history / "index.db")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout.readline().strip() == "created"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert (history / "index.db").stat().st_size == 0
    preflight.check_stores(Home(home), home / "dagster")
    events = SqliteEventLogStorage(str(history))
    assert events.get_latest_materialization_events([dg.AssetKey("ratings")]) == {}
    assert (history / "index.db").read_bytes().startswith(b"SQLite format 3")


@pytest.mark.parametrize("where", ["landing", "landing/ratings"])
def test_a_file_in_place_of_a_landing_folder_is_named(tmp_path, where):
    """It gave "[Errno 20] Not a directory: …/landing/users" and nothing to do."""
    (tmp_path / where).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / where).write_text("x")
    with pytest.raises(DamagedStore, match=re.escape(f"{tmp_path / where} is not a folder: move")):
        Home(tmp_path).create_landing()
