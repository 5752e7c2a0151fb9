"""A file of a million tiny records: every record ends up in its table or quarantined with
its reason, and ingest's memory does not grow with the number of records (the Python text
reader holds one block of records at a time, DuckDB spills beyond a limit in proportion to
the size of the file's content). Measured in a process of its own, as the pipeline runs it."""

import json
import subprocess
import sys

import duckdb
from landing_helpers import GOOD_RATING, jsonl, write

RECORDS = 1_000_000
LAST_RATING = {"user_id": "bob", "artist_id": "a2", "rating": 3.5}

# ingests the landing folder of the home given, catalogue first; prints what the ratings file
# took: its report, and how far the peak resident memory of the process rose above what it
# held before (Linux: /proc)
CHILD = """
import json, sys
from pathlib import Path
from musicrec_assets.warehouse import ingest, landing
from musicrec_assets.warehouse.tables import connect, ensure_schema

def memory_kib(field):
    # the process's own since it started (ru_maxrss would count the parent's, from the fork)
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return int(status[field].split()[0])

home = Path(sys.argv[1])
con = connect(home / "warehouse.duckdb")
con.execute("SET threads = 2")  # the same figure whatever the machine's cores
ensure_schema(con)
*catalogue, ratings = landing.scan(home / "landing")
for file in catalogue:
    ingest.ingest_file(con, file)
before = memory_kib("VmRSS")
report = ingest.ingest_file(con, ratings)
grown = memory_kib("VmHWM") - before
con.close()
print(json.dumps({"report": [report.rows_read, report.rows_accepted, report.rows_rejected],
                  "reasons": report.rejected_by_reason, "grown_mib": grown / 1024}))
"""


def test_a_million_tiny_records_arrive_in_bounded_memory(tmp_path):
    landing_dir = tmp_path / "landing"
    write(landing_dir, "users/u.jsonl", jsonl({"id": "ann"}, {"id": "bob"}))
    write(landing_dir, "artists/a.jsonl", jsonl({"id": "a1"}, {"id": "a2"}))
    # two bytes a record: a good rating, then 999,998 numbers (not objects), a good rating
    middle = "1," * (RECORDS - 2)
    write(
        landing_dir,
        "ratings/tiny.json",
        f"[{json.dumps(GOOD_RATING)},{middle}{json.dumps(LAST_RATING)}]",
    )

    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    took = json.loads(child.stdout.splitlines()[-1])
    assert took["report"] == [RECORDS, 2, RECORDS - 2]
    assert took["reasons"] == {"not a JSON object": RECORDS - 2}
    # before: about 405 MiB (the text reader's blocks unbounded, every table in memory)
    assert took["grown_mib"] < 300, took

    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute(
            "SELECT user_id, artist_id, rating FROM ratings ORDER BY ALL"
        ).fetchall() == [("ann", "a1", 4.0), ("bob", "a2", 3.5)]
        assert con.execute(
            """SELECT count(*), count(DISTINCT record_no), min(record_no), max(record_no),
                      any_value(reason), bool_and(raw = '1') FROM rejected_rows"""
        ).fetchall() == [(RECORDS - 2, RECORDS - 2, 2, RECORDS - 1, "not a JSON object", True)]
