"""Issue 27 item 11: `musicrec run` on a full disk (a real one: the home on a small tmpfs,
filled up, which takes root) ends in one line that says the disk is full and where, no
traceback; once space is freed the next run finishes with every file ingested once."""

import os
import shutil
import subprocess
import uuid

import dagster as dg
import duckdb
import pytest
import yaml
from harness import MUSICREC, REPO_ROOT, TINY_RUN, small_world

from musicrec_assets.cli import preflight
from musicrec_assets.datasets.synthetic import write_landing
from musicrec_assets.home import Home
from musicrec_assets.warehouse.tables import DamagedStore

DISK_BYTES = 24 * 2**20
LEFT_FREE = 3 * 2**20


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a real full disk takes a tmpfs, which only root can mount")
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def run(home, config) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MUSICREC, "run", "--home", str(home), "--config", str(config)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_a_run_on_a_full_disk_says_so_and_the_next_one_takes_it_up(small_disk, tmp_path):
    home = small_disk / "home"
    world = small_world()
    write_landing(world, home / "landing")
    config = tmp_path / "tiny-run.yaml"
    config.write_text(yaml.safe_dump(TINY_RUN))
    filler = small_disk / f"filler-{uuid.uuid4().hex}"
    with filler.open("wb") as out:
        out.truncate(0)
        free = shutil.disk_usage(small_disk).free
        block = b"\0" * 2**20
        for _ in range((free - LEFT_FREE) // len(block)):
            out.write(block)

    full = run(home, config)
    assert full.returncode != 0, full.stdout
    assert "Traceback" not in full.stdout + full.stderr, full.stderr
    lines = full.stderr.strip().splitlines()
    assert len(lines) == 1, full.stderr
    # the path written, or (where SQLite says no more than "disk I/O error") the home
    assert lines[0].startswith("musicrec: disk full: no space left on the device writing")
    assert str(home) in lines[0]
    assert "Free some space and run again" in lines[0]

    filler.unlink()
    again = run(home, config)
    assert again.returncode == 0, again.stdout + again.stderr
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        ledger = sorted(
            path for (path,) in con.execute("SELECT path FROM ingested_files").fetchall()
        )
        assert ledger == ["artists/artists.jsonl", "ratings/ratings.jsonl", "users/users.jsonl"]
        accepted = con.execute(
            "SELECT sum(rows_accepted) FROM ingested_files WHERE kind = 'ratings'"
        ).fetchone()[0]
        assert con.execute("SELECT count(*) FROM ratings").fetchone()[0] == accepted
        assert accepted == len(world.ratings)
        assert con.execute("SELECT count(*) FROM user_recommendations").fetchone()[0] > 0


def failed_run(error: Exception) -> dg.ExecuteInProcessResult:
    @dg.op
    def step():
        raise error

    @dg.job
    def job():
        step()

    return job.execute_in_process(raise_on_error=False)


def test_a_step_that_fills_the_disk_is_named_by_the_run(tmp_path):
    """What `musicrec run` prints when a step (not the Dagster storage) found the disk full,
    and when a step found a store damaged."""
    working = tmp_path / "pipeline" / "warehouse.duckdb"
    full = failed_run(OSError(28, "No space left on device", str(working)))
    line, status = preflight.run_failure(Home(tmp_path), full.all_events)
    assert line.startswith(f"disk full: no space left on the device writing {working}")
    assert status == 1
    damaged = failed_run(DamagedStore(f"{working} is damaged (empty): restore it"))
    assert preflight.run_failure(Home(tmp_path), damaged.all_events) == (
        f"{working} is damaged (empty): restore it",
        2,
    )


def test_a_copy_that_fills_the_disk_names_the_file_it_was_writing(tmp_path):
    """A reader's first download of the champion on a full disk named the file it copied
    from, in mlartifacts/, as the one being written (Python's message: 'from' -> 'to')."""
    source = tmp_path / "mlartifacts" / "factors.npz"
    target = tmp_path / "models" / ".download-x" / "factors.npz"
    error = OSError(28, "No space left on device", str(source), None, str(target))
    line = preflight.disk_full(Home(tmp_path), preflight.error_chain(error))
    assert line.startswith(f"disk full: no space left on the device writing {target}")
