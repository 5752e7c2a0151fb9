"""How long a person waits for the command line (issue 25): each reader command as a whole
process on a home `make demo` made, beside a process that only asks DuckDB for the same rows.

Goals: ``recommend USER``, ``similar``, ``top-users`` and ``sql`` under 0.3 s; ``--explain`` and
``--ratings`` under 1 s. Each figure is the median of ``--repeat`` runs, the commands taking
turns run by run (the machine is shared). The home is ``--home``, else ``$MUSICREC_HOME``, else
``.musicrec``; it must hold a run's tables (``make demo``) and, for ``--explain``, the champion's
downloaded copy (the first ``--explain`` downloads it: one run is made before timing).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
from common import REPO_ROOT, print_environment, print_table

MUSICREC = str(Path(sys.executable).with_name("musicrec"))
# the reference: a process that opens the warehouse read-only and fetches the same rows
DUCKDB_QUERY = (
    "import duckdb, sys; "
    "duckdb.connect(sys.argv[1], read_only=True).execute(sys.argv[2], sys.argv[3:]).fetchall()"
)


def wall_seconds(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=REPO_ROOT, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=os.environ.get("MUSICREC_HOME", ".musicrec"))
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    home = Path(args.home).resolve()
    warehouse = home / "warehouse.duckdb"
    if not warehouse.exists():
        sys.exit(f"bench_cli: no warehouse in {home}: run `make demo` first")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        user, artist = con.execute(
            "SELECT user_id, artist_id FROM user_recommendations WHERE rank = 1 LIMIT 1"
        ).fetchone()
        rated = con.execute(
            "SELECT artist_id, rating FROM ratings WHERE user_id = ? LIMIT 20", [user]
        ).fetchall()
    ratings = Path(tempfile.mkdtemp()) / "new-listener.jsonl"
    ratings.write_text("".join(json.dumps({"artist_id": a, "rating": r}) + "\n" for a, r in rated))
    where = ["--home", str(home)]
    cases = {
        "recommend USER": ([MUSICREC, "recommend", user, *where], 0.3),
        "similar ARTIST": ([MUSICREC, "similar", artist, *where], 0.3),
        "top-users ARTIST": ([MUSICREC, "top-users", artist, *where], 0.3),
        "sql (10 rows)": (
            [MUSICREC, "sql", "SELECT * FROM user_recommendations LIMIT 10", *where],
            0.3,
        ),
        "recommend USER --explain": ([MUSICREC, "recommend", user, "--explain", *where], 1.0),
        "recommend --ratings FILE (20)": (
            [MUSICREC, "recommend", "--ratings", str(ratings), *where],
            1.0,
        ),
    }
    reference = [
        sys.executable,
        "-c",
        DUCKDB_QUERY,
        str(warehouse),
        "SELECT * FROM user_recommendations_named WHERE user_id = ?",
        user,
    ]
    wall_seconds(cases["recommend USER --explain"][0])  # downloads the champion's copy once
    times: dict[str, list[float]] = {name: [] for name in [*cases, "reference"]}
    for _ in range(args.repeat):
        for name, (command, _) in cases.items():
            times[name].append(wall_seconds(command))
        times["reference"].append(wall_seconds(reference))
    print_environment(f"musicrec's reader commands on {home}, whole processes")
    print(f"here every time is the median of {args.repeat} runs instead")
    duckdb_alone = statistics.median(times["reference"])
    print_table(
        "the command line beside a process that only asks DuckDB for one user's rows",
        ["command", "median wall (s)", "goal (s)", "met", "DuckDB query process (s)"],
        [
            (
                name,
                f"{statistics.median(times[name]):.2f}",
                f"{goal:.1f}",
                "yes" if statistics.median(times[name]) <= goal else "no",
                f"{duckdb_alone:.2f}",
            )
            for name, (_, goal) in cases.items()
        ],
    )


if __name__ == "__main__":
    main()
