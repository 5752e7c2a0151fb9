"""Where a drop's time goes under `dagster dev`, on its way to the listener's list (issue 23).

Runs ``bench_fold_in.py --latency`` (a home trained on the bundled sample, then ``--listeners``
new listeners' files of 20 ratings renamed into its landing folder under ``dagster dev``, each
timed until their fold-in rows are readable) and times each drop's ``ingest_job`` run through
the Dagster instance: the landing sensor's ticks after the drop, the one that requested the
run, the run's start (the queue and the launch of its process) and its end.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import bench_fold_in
import dagster as dg
from common import print_environment, print_table

RUN_END_SECONDS = 60  # how long to wait for a run's end once its list is readable

_drop = bench_fold_in._one_listener
_timings: list[list] = []


def _timed_drop(home: Path, tmp: Path, user: str, artists: list, rng, args) -> tuple:
    """``bench_fold_in``'s drop of one listener, with its ingest run timed (``_timings``)."""
    dropped = time.time()
    row = _drop(home, tmp, user, artists, rng, args)
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        [run] = [
            record
            for record in instance.get_run_records(dg.RunsFilter(job_name="ingest_job"))
            if f"ratings/{user}.jsonl" in record.dagster_run.tags.get("musicrec/files", "")
        ]
        deadline = time.monotonic() + RUN_END_SECONDS
        stats = instance.get_run_stats(run.dagster_run.run_id)
        while stats.end_time is None and time.monotonic() < deadline:
            time.sleep(0.5)
            stats = instance.get_run_stats(run.dagster_run.run_id)
        [sensor] = [
            state
            for state in instance.all_instigator_state()
            if state.instigator_name == "landing_sensor"
        ]
        ticks = instance.get_ticks(sensor.instigator_origin_id, sensor.selector_id, limit=20)
    looks = sorted(
        tick.timestamp - dropped
        for tick in ticks
        if dropped < tick.timestamp <= run.create_timestamp.timestamp()
    )
    ended = "-" if stats.end_time is None else f"{stats.end_time - dropped:.1f}"
    _timings.append(
        [
            user,
            ", ".join(f"{look:.1f}" for look in looks),
            f"{run.create_timestamp.timestamp() - dropped:.1f}",
            f"{stats.start_time - dropped:.1f}",
            f"{row[3]:.1f}",
            ended,
        ]
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--interval", type=int, default=30, help="sensor interval (s)")
    parser.add_argument("--listeners", type=int, default=4, help="drops timed")
    parser.add_argument("--port", type=int, default=3918, help="dagster dev's port")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per drop")
    args = parser.parse_args()
    print_environment("a drop's way to its list under dagster dev, step by step")
    bench_fold_in._one_listener = _timed_drop
    bench_fold_in.latency(args)
    print_table(
        f"Each drop's ingest run, s after the drop (sensor interval {args.interval} s)",
        ["listener", "sensor ticks", "run requested", "run started", "list readable", "run ended"],
        _timings,
    )


if __name__ == "__main__":
    main()
