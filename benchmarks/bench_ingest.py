"""Ingest throughput: ``ingest.ingest_file`` against DuckDB's plain ``read_json``.

Writes a synthetic landing folder (``synthetic.write_bulk_ratings``: 5,000,000 ratings by default,
users = rows / 50, artists = rows / 100, with ``write_catalogue``'s users and artists), finds the
files with ``landing.scan`` and ingests users, artists, then ratings into a fresh DuckDB file.
The reference is ``CREATE TABLE t AS SELECT * FROM read_json(?)`` of the same file into another
fresh DuckDB file, in the same run (interleaved with ours, so both see the same machine load).

Target (from the issue): ingest ≥ 0.5× read_json's rows/s on the ratings file.

Then the same ratings again but the last (``resent/ratings.jsonl``: new content, every pair
already stored), ingested after the first: the upsert a weekly play-count dump brings.

Then ingest_file's steps (its private functions) are timed one by one on the ratings file: the
clean pass it takes (every record valid, every key new), and the general path that the same
file would take with one rejected record or one stored key (or, with one line read_json cannot
read, its text read instead of the typed one).

    .venv/bin/python benchmarks/bench_ingest.py [--rows N] [--repeat N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from common import peak_rss_mib, print_environment, print_table, ratio, repeat_argument

from musicrec_assets.datasets.synthetic import write_bulk_ratings, write_catalogue
from musicrec_assets.warehouse import ingest, landing
from musicrec_assets.warehouse import tables as warehouse
from musicrec_assets.warehouse.ingest import clean_pass, general_path

TARGET_RATIO = 0.5


def write_landing(landing_dir: Path, rows: int) -> list[landing.LandingFile]:
    catalogue = write_bulk_ratings(
        landing_dir / "ratings" / "ratings.jsonl", rows, n_users=rows // 50, n_artists=rows // 100
    )
    write_catalogue(catalogue, landing_dir)
    return landing.scan(landing_dir)


def write_resent(ratings: landing.LandingFile, landing_dir: Path) -> landing.LandingFile:
    """``ratings`` but its last line, in a landing folder of its own."""
    resent = landing_dir / "ratings" / "ratings.jsonl"
    resent.parent.mkdir(parents=True)
    with ratings.path.open("rb") as source, resent.open("wb") as target:
        previous = source.readline()
        for line in source:
            target.write(previous)
            previous = line
    (file,) = landing.scan(landing_dir)
    return file


def fresh_database(path: Path, connect=warehouse.connect) -> duckdb.DuckDBPyConnection:
    for stale in (path, path.with_name(path.name + ".wal")):
        stale.unlink(missing_ok=True)
    con = connect(str(path))
    # DuckDB draws a progress bar on stderr for queries over 2 s
    con.execute("SET enable_progress_bar = false")
    return con


def ingest_all(path: Path, files: list[landing.LandingFile]) -> dict[Path, tuple[float, int]]:
    """(seconds, rows) of ``ingest_file`` per file (by path), ingested in order."""
    timings = {}
    with fresh_database(path) as con:
        warehouse.ensure_schema(con)
        for file in files:
            started = time.perf_counter()
            report = ingest.ingest_file(con, file)
            timings[file.path] = (time.perf_counter() - started, report.rows_read)
            if report.rows_rejected or report.skipped:
                raise RuntimeError(f"{file.relative_path}: expected every row accepted, {report}")
    return timings


def read_json(path: Path, file: landing.LandingFile) -> float:
    with fresh_database(path, duckdb.connect) as con:
        started = time.perf_counter()
        con.execute("CREATE TABLE t AS SELECT * FROM read_json(?)", [file.reader_path])
        return time.perf_counter() - started


def ingest_phases(path: Path, files: list[landing.LandingFile]) -> dict[str, float]:
    """Seconds of each step of ``ingest_file`` on the last file (ratings), the others ingested
    first: the clean pass the file takes, then (rolled back) the general path that a file
    with one rejected record or one stored key would take instead."""
    *catalogue, file = files
    phases: dict[str, float] = defaultdict(float)

    @contextmanager
    def phase(name: str):
        started = time.perf_counter()
        yield
        phases[name] += time.perf_counter() - started

    with fresh_database(path) as con:
        warehouse.ensure_schema(con)
        for earlier in catalogue:
            ingest.ingest_file(con, earlier)
        json_format = file.json_format()
        now = datetime.now(UTC).replace(tzinfo=None)
        with phase("sha256 of the file (in ingest_file: a thread beside the insert)"):
            file.sha256()

        with warehouse.insertion_order(con, preserve=False):
            con.begin()
            with phase("clean pass: read_json, check, insert; then ids and repeated keys"):
                clean_pass.insert(con, file, json_format, now)
            con.rollback()

        con.begin()
        with phase("general path, a file read_json cannot read: parse_text (records as text)"):
            general_path.parse_text(con, file, json_format)
        with phase("general path: parse_typed (read_json → temp table)"):
            general_path.parse_typed(con, file, json_format)
        with warehouse.insertion_order(con, preserve=False):
            with phase("general path: validate (types, reasons, duplicates)"):
                general_path.validate(con, file.kind, numbered_by_rowid=True)
            with phase("general path: apply_accepted (upsert)"):
                general_path.apply_accepted(con, file.kind, file.relative_path, now)
            con.rollback()
    return dict(phases)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000, help="ratings rows (default 5M)")
    repeat_argument(parser)
    args = parser.parse_args()
    print_environment(f"bench_ingest: {args.rows:,} ratings, best of {args.repeat}")

    with tempfile.TemporaryDirectory(prefix="bench_ingest_") as scratch:
        scratch = Path(scratch)
        started = time.perf_counter()
        files = write_landing(scratch / "landing", args.rows)
        resent = write_resent(files[-1], scratch / "resent")
        print(
            f"landing folder written in {time.perf_counter() - started:.1f} s: "
            + ", ".join(
                f"{file.relative_path} {file.size_bytes / 2**20:,.1f} MiB" for file in files
            )
        )
        names = {file.path: file.relative_path for file in files}
        names[resent.path] = "ratings again, every pair stored"
        ratings = files[-1].path

        rows: dict[Path, int] = {}
        ours: dict[Path, float] = defaultdict(lambda: float("inf"))
        reference: dict[Path, float] = defaultdict(lambda: float("inf"))
        phases: dict[str, float] = defaultdict(lambda: float("inf"))
        # interleaved, so that a burst of load on the shared machine hits both sides alike
        for _ in range(args.repeat):
            for file in [*files, resent]:
                seconds = read_json(scratch / "reference.duckdb", file)
                reference[file.path] = min(reference[file.path], seconds)
            timings = ingest_all(scratch / "ours.duckdb", [*files, resent])
            for path, (seconds, n) in timings.items():
                ours[path], rows[path] = min(ours[path], seconds), n
            for name, seconds in ingest_phases(scratch / "phases.duckdb", files).items():
                phases[name] = min(phases[name], seconds)

    table = []
    for path, name in names.items():
        n = rows[path]
        table.append(
            [
                name,
                f"{n:,}",
                f"{ours[path]:.2f}",
                f"{n / ours[path]:,.0f}",
                f"{reference[path]:.2f}",
                f"{n / reference[path]:,.0f}",
                ratio(reference[path], ours[path]),
            ]
        )
    print_table(
        f"ingest_file vs read_json (target: ratings ≥ {TARGET_RATIO}× read_json's rows/s)",
        [
            "file",
            "rows",
            "ingest s",
            "ingest rows/s",
            "read_json s",
            "read_json rows/s",
            "ratio (ours ÷ ref rows/s)",
        ],
        table,
    )
    verdict = "meets" if reference[ratings] / ours[ratings] >= TARGET_RATIO else "misses"
    print(f"ratings: {verdict} the target")

    print_table(
        "ingest_file's steps on the ratings file (each step's best run; read_json for scale)",
        ["step", "seconds", "× read_json"],
        [
            [name, f"{seconds:.2f}", f"{seconds / reference[ratings]:.2f}"]
            for name, seconds in phases.items()
        ]
        + [["(reference: plain read_json → table)", f"{reference[ratings]:.2f}", "1.00"]],
    )
    print(f"\npeak resident memory of this process: {peak_rss_mib():,.0f} MiB")


if __name__ == "__main__":
    main()
