import os
import subprocess
import sys
import threading

import duckdb
import pandas as pd
import pytest

from musicrec_assets.warehouse import published
from musicrec_assets.warehouse.tables import WarehouseBusy, connect, publish_table


def test_publish_swaps_atomically_for_concurrent_readers(tmp_path):
    """A reader during a many-chunk rewrite sees the old or the new version, never a mix."""
    path = tmp_path / "w.duckdb"
    con = duckdb.connect(str(path))

    def version(name: str, chunks: int = 20, rows: int = 5000):
        for _ in range(chunks):
            yield pd.DataFrame({"row": range(rows), "model_version": name})

    publish_table(con, "recs", version("old"))
    seen, stop = [], threading.Event()

    def read():
        reader = con.cursor()
        while not stop.is_set():
            seen.append(
                tuple(
                    reader.execute(
                        "SELECT count(DISTINCT model_version), min(model_version), count(*) "
                        "FROM recs"
                    ).fetchall()[0]
                )
            )

    thread = threading.Thread(target=read)
    thread.start()
    publish_table(con, "recs", version("new"))
    publish_table(con, "recs", version("old"))
    stop.set()
    thread.join()
    assert len(seen) > 3
    assert set(seen) <= {(1, "old", 100_000), (1, "new", 100_000)}


def test_publish_of_nothing_keeps_the_old_table(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    publish_table(con, "t", [pd.DataFrame({"a": [1]})])
    with pytest.raises(ValueError):
        publish_table(con, "t", [])
    assert con.execute("SELECT a FROM t").fetchall() == [(1,)]


def test_a_locked_warehouse_says_so(tmp_path):
    path = tmp_path / "w.duckdb"
    script = (
        "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
        "print('locked', flush=True); time.sleep(30)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(WarehouseBusy, match="locked by a running pipeline"):
            connect(path, read_only=True)
    finally:
        holder.kill()
        holder.wait()


# a reader as the README shows it: one read-only connection, held until told to stop
HOLDING_READER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print(con.execute("SELECT max(version) FROM t").fetchall()[0][0], flush=True)
sys.stdin.readline()
print(con.execute("SELECT max(version), count(*) FROM t").fetchall()[0], flush=True)
"""


def _version(con, version: int) -> None:
    con.execute(
        "CREATE OR REPLACE TABLE t AS SELECT ? AS version, range AS row FROM range(1000)", [version]
    )


def test_publication_never_waits_for_a_reader_holding_the_published_file(tmp_path):
    working, readers_copy = published.working_copy(tmp_path / "w.duckdb"), tmp_path / "w.duckdb"
    working.parent.mkdir()
    writer = duckdb.connect(str(working))
    _version(writer, 1)
    published.publish(writer, working, readers_copy)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDING_READER, str(readers_copy)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "1"
        for version in (2, 3, 4):
            _version(writer, version)
            published.publish(writer, working, readers_copy)
        seen_by_holder = holder.communicate("stop\n", timeout=30)[0].strip()
    finally:
        holder.kill()
    assert seen_by_holder == "(1, 1000)"  # the file it opened, whole, all along
    with duckdb.connect(str(readers_copy), read_only=True) as reader:
        assert reader.execute("SELECT max(version), count(*) FROM t").fetchall() == [(4, 1000)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipeline", "w.duckdb"]


def test_an_unchanged_working_copy_is_not_copied_again(tmp_path):
    working, readers_copy = tmp_path / "pipeline.duckdb", tmp_path / "w.duckdb"
    writer = duckdb.connect(str(working))
    _version(writer, 1)
    published.publish(writer, working, readers_copy)
    inode = readers_copy.stat().st_ino
    writer.execute("SELECT count(*) FROM t").fetchall()
    published.publish(writer, working, readers_copy)
    assert readers_copy.stat().st_ino == inode
    _version(writer, 2)
    published.publish(writer, working, readers_copy)
    assert readers_copy.stat().st_ino != inode


def test_a_change_that_keeps_size_and_mtime_is_published(tmp_path):
    """Where mtimes have whole seconds, two steps that end in the same second with a file of
    one size kept the same stamp, and the second step's change was never published."""
    working, readers_copy = tmp_path / "pipeline.duckdb", tmp_path / "w.duckdb"
    writer = duckdb.connect(str(working))
    _version(writer, 1)
    published.publish(writer, working, readers_copy)
    writer.execute("UPDATE t SET version = 2")
    writer.execute("CHECKPOINT")
    before = readers_copy.stat()
    os.utime(working, ns=(before.st_atime_ns, before.st_mtime_ns))  # the same second, as it were
    assert working.stat().st_size == before.st_size
    published.publish(writer, working, readers_copy)
    with duckdb.connect(str(readers_copy), read_only=True) as reader:
        assert reader.execute("SELECT DISTINCT version FROM t").fetchall() == [(2,)]


def test_a_copy_left_by_a_killed_publication_is_cleared(tmp_path):
    working, readers_copy = tmp_path / "pipeline.duckdb", tmp_path / "w.duckdb"
    (tmp_path / ".w.duckdb.abc123.part").write_bytes(b"half a copy")
    writer = duckdb.connect(str(working))
    _version(writer, 1)
    published.publish(writer, working, readers_copy)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipeline.duckdb", "w.duckdb"]


def test_a_home_from_before_the_working_copy_is_adopted_with_its_log(tmp_path):
    """Its runs wrote warehouse.duckdb itself; one may have ended before checkpointing."""
    legacy = tmp_path / "warehouse.duckdb"
    script = (
        "import duckdb, os, sys; c = duckdb.connect(sys.argv[1]); "
        "c.execute(\"SET checkpoint_threshold = '1GB'\"); "
        "c.execute('CREATE TABLE t AS SELECT 1 AS version'); c.execute('CHECKPOINT'); "
        "c.execute('INSERT INTO t VALUES (2)'); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", script, str(legacy)], check=True)
    assert legacy.with_name("warehouse.duckdb.wal").exists()
    working = published.working_copy(legacy)
    published.adopt(legacy, working)
    assert not legacy.with_name("warehouse.duckdb.wal").exists()
    with duckdb.connect(str(working)) as writer:
        assert writer.execute("SELECT list(version ORDER BY version) FROM t").fetchall() == [
            ([1, 2],)
        ]
        published.publish(writer, working, legacy)
    with duckdb.connect(str(legacy), read_only=True) as reader:
        assert reader.execute("SELECT count(*) FROM t").fetchall() == [(2,)]
    published.adopt(legacy, working)  # once only: the working copy is the pipeline's now
    assert not list(working.parent.glob(".*.part"))
