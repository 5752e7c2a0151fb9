"""Does the driver hold the data? The whole graph (`musicrec run`) on a Last.fm-360K-shaped set at
1×, 2× and 4× a base size, on the Spark backend and on the local one, printing the Dagster
process's peak RSS beside the interaction count, and the whole graph's wall time.

The Dagster process is `musicrec run` itself (the in-process executor runs every step in it);
Spark's JVM is its child and is not counted: the question is what the driver's Python holds.
Peak RSS is the kernel's high-water mark of that one process (``VmHWM`` in
``/proc/<pid>/status``, read until it exits). Each size runs once on a fresh home, with one
fixed trial per model (tuning still cross-validates it, 2 folds), so the time is the graph's,
not a search's. Single runs on a shared machine: the load average is printed beside each.

On the Spark backend the interactions go from DuckDB to Parquet and only Spark reads them, so
its peak should stay flat while the local backend's grows with the interactions; what still
grows on the driver is what scales with users and artists (their ids, the factors of the models
logged to MLflow), which `--base-scale` makes visible.

    .venv/bin/python benchmarks/bench_spark.py [--base-scale 1.0] [--multiples 1,2,4]
        [--backends spark,local] [--timeout 7200]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from common import REPO_ROOT, print_environment, print_table

from musicrec_assets.datasets.synthetic import generate_lastfm360k_shape
from musicrec_assets.home import Home

MIB = 1 << 20
MUSICREC = str(Path(sys.executable).with_name("musicrec"))
# one point of each grid: λ for implicit's plain λ and Spark's row-scaled one, converted as
# backends/spark/als.py documents (λ_spark ≈ λ_implicit · n_users / nnz, about 1/48 here)
SETTINGS = {
    "feedback": "implicit",
    "ranks": [32],
    "alphas": [1.0],
    "confidences": ["log1p"],
    "neighbours": [100],
    "similarities": ["cosine"],
    "iterations": 10,
    "n_folds": 2,
    "ranked_users": 5000,
}
REGULARIZATION = {"local": 30.0, "spark": 0.6}


def _peak_rss(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


def run_graph(home: Path, backend: str, timeout: float) -> dict:
    config = home / "bench.yaml"
    settings = SETTINGS | {"regularizations": [REGULARIZATION[backend]]}
    resources = {"settings": {"config": settings}}
    if backend == "spark":
        resources["spark"] = {"config": {"driver_memory": "6g"}}
    config.write_text(yaml.safe_dump({"resources": resources}))
    command = [MUSICREC, "run", "--home", str(home), "--backend", backend, "--config", str(config)]
    started = time.perf_counter()
    load = os.getloadavg()[0]
    with open(home / f"{backend}.log", "w") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
        peak = 0
        while process.poll() is None:
            peak = max(peak, _peak_rss(process.pid) or 0)
            if time.perf_counter() - started > timeout:
                process.kill()
            time.sleep(0.2)
    return {
        "exit": process.returncode,
        "seconds": time.perf_counter() - started,
        "peak_mib": peak / MIB,
        "load": load,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-scale", type=float, default=1.0, help="1× as a share of 360K")
    parser.add_argument("--multiples", default="1,2,4")
    parser.add_argument("--backends", default="spark,local")
    parser.add_argument("--timeout", type=float, default=7200.0, help="seconds per graph run")
    args = parser.parse_args()
    print_environment(__doc__.splitlines()[0])
    rows = []
    for multiple in [float(m) for m in args.multiples.split(",")]:
        scale = args.base_scale * multiple
        with tempfile.TemporaryDirectory(prefix="bench-spark-") as tmp:
            landing = Home(Path(tmp, "landing-source")).landing
            counts = generate_lastfm360k_shape(landing, scale=scale, seed=0)
            for backend in args.backends.split(","):
                home = Path(tmp, backend)
                shutil.copytree(landing, Home(home).landing)
                result = run_graph(home, backend, args.timeout)
                print(f"{multiple:g}× {backend}: {result}", flush=True)
                if result["exit"] != 0:
                    print((home / f"{backend}.log").read_text()[-3000:])
                rows.append({"multiple": multiple, "backend": backend, **counts, **result})
    base = {row["backend"]: row for row in rows if row["multiple"] == rows[0]["multiple"]}
    headers = ["size", "backend", "interactions", "users", "peak RSS MiB", "RSS ÷ 1×", "graph s"]
    print_table(
        "Dagster process peak RSS and whole-graph time by size",
        [*headers, "exit", "load"],
        [
            [
                f"{row['multiple']:g}×",
                row["backend"],
                f"{row['ratings']:,}",
                f"{row['users']:,}",
                f"{row['peak_mib']:.0f}",
                f"{row['peak_mib'] / base[row['backend']]['peak_mib']:.2f}",
                f"{row['seconds']:.0f}",
                row["exit"],
                f"{row['load']:.1f}",
            ]
            for row in rows
        ],
    )


if __name__ == "__main__":
    main()
