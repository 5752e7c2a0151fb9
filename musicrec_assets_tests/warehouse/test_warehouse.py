import threading

import duckdb
import pandas as pd
import pytest

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
    import subprocess
    import sys

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
