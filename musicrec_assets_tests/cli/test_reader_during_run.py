"""Readers of `warehouse.duckdb` during a run, in processes of their own: one holds its
read-only connection from the first publication to the end of the run (as the README's
Python example does), one opens the file anew for every query. The run succeeds; neither
reader is ever refused, and neither sees a table half-written or changing under it."""

import json
import subprocess
import sys

import duckdb
from harness import FAST_SETTINGS, run_pipeline

from musicrec_assets.datasets.synthetic import generate_world, write_landing

# argv: warehouse, "hold" or "reopen"; polls until a line arrives on stdin, then prints its
# observations as JSON. Every poll reads each table's row count; user_recommendations also
# its users and model versions, to tell a whole table from part of one.
READER = """
import json, sys, threading, time
import duckdb

warehouse, mode = sys.argv[1], sys.argv[2]
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()

def observe(con):
    tables = [t for (t,) in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
    ).fetchall()]
    counts = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchall()[0][0] for t in tables}
    if "user_recommendations" in tables:
        counts["recommended_users"], counts["versions"] = con.execute(
            "SELECT count(DISTINCT user_id), count(DISTINCT model_version) "
            "FROM user_recommendations").fetchall()[0]
    return counts

observations, refusals = [], []
while not stop.is_set():
    try:
        held = duckdb.connect(warehouse, read_only=True)
        break
    except duckdb.IOException:  # not published yet
        time.sleep(0.05)
if mode == "reopen":
    held.close()  # else DuckDB hands every later connect in this process the same database
last = stop.is_set() # one poll more after the stop, so that the end of the run is seen
while not last:
    last = stop.is_set()
    try:
        if mode == "hold":
            observations.append(observe(held))
        else:
            with duckdb.connect(warehouse, read_only=True) as con:
                observations.append(observe(con))
    except duckdb.Error as error:
        refusals.append(str(error).splitlines()[0])
    time.sleep(0.2)
print(json.dumps({"observations": observations, "refusals": refusals}), flush=True)
"""


def start_reader(warehouse, mode: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", READER, str(warehouse), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_readers_never_fail_a_run_nor_see_half_a_table(tmp_path):
    world = generate_world(seed=5, n_users=40, n_artists=200, n_ratings=1500)
    write_landing(world, tmp_path / "landing")
    warehouse = tmp_path / "warehouse.duckdb"
    holder, reopener = start_reader(warehouse, "hold"), start_reader(warehouse, "reopen")
    try:
        result = run_pipeline(tmp_path)
        reports = [
            json.loads(p.communicate("stop\n", timeout=60)[0].splitlines()[-1])
            for p in (holder, reopener)
        ]
    finally:
        holder.kill()
        reopener.kill()
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    held, reopened = reports

    assert held["refusals"] == [] and reopened["refusals"] == []
    # the holder opened the first publication (after the first ingest step) and held it
    # through training and serving: what it saw never changed
    assert len(held["observations"]) > 10
    assert all(seen == held["observations"][0] for seen in held["observations"])
    assert "user_recommendations" not in held["observations"][0]

    # every user_recommendations seen is the whole table: top_n rows for each user, one model
    whole = [seen for seen in reopened["observations"] if "user_recommendations" in seen]
    assert whole, "the reader never saw the recommendations"
    for seen in whole:
        assert seen["versions"] == 1
        assert seen["user_recommendations"] == FAST_SETTINGS.top_n * seen["recommended_users"]
        assert seen["recommended_users"] == whole[-1]["recommended_users"]
    # and the last poll, after the run, saw what the run left
    with duckdb.connect(str(warehouse), read_only=True) as con:
        ratings = con.execute("SELECT count(*) FROM ratings").fetchall()[0][0]
    assert reopened["observations"][-1]["ratings"] == ratings > 0
