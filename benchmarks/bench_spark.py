"""Does the driver hold the data? The whole graph (`musicrec run`) on a Last.fm-360K-shaped set at
1×, 2× and 4× a base size, on the Spark backend and on the local one, printing the Dagster
process's peak RSS beside the interaction count, and the whole graph's wall time.

First, what a system BLAS buys Spark: one ALS fit (rank 64, 10 iterations, log1p confidence)
of ``--blas-scale`` of that shape on ``local[2]``, each in its own process (a JVM finds its
linear algebra once), with the system's BLAS and LAPACK and with Spark's Java fallback
(``dev.ludovic.netlib``'s ``nativeLib`` pointed at nothing), ``--blas-repeat`` times each,
the median printed beside the classes the JVM used. Without a system BLAS both rows are Java.

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
        [--backends spark,local] [--timeout 7200] [--blas-scale 0.05] [--blas-repeat 2]
        [--blas-only]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
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


# Spark's Java fallback: dev.ludovic.netlib dlopens these names instead of libblas.so.3 and
# liblapack.so.3, finds nothing and runs Java code
JAVA_LINEAR_ALGEBRA = (
    "-Ddev.ludovic.netlib.blas.nativeLib=none -Ddev.ludovic.netlib.lapack.nativeLib=none"
)


def fit_once(scale: float, linear_algebra: str) -> None:
    """One Spark ALS fit in this process; prints a JSON line: seconds and the classes used."""
    import dataclasses

    from musicrec_assets.backends.spark.als import fit_spark_als, spark_session
    from musicrec_assets.backends.spark.als import linear_algebra as used
    from musicrec_assets.datasets.synthetic.lastfm360k import lastfm360k_play_matrix
    from musicrec_assets.model.factors import TrainingParams

    plays = lastfm360k_play_matrix(scale, seed=1)
    params = TrainingParams(
        "ranking", rank=64, regularization=1.0, iterations=10, confidence="log1p", alpha=1.0
    )
    # implicit's λ 30 → Spark's count-weighted λ, as spark_als converts it
    params = dataclasses.replace(
        params, regularization=30.0 * plays.shape[0] / plays.nnz, weighted_regularization=True
    )
    options = JAVA_LINEAR_ALGEBRA if linear_algebra == "java" else ""
    conf = {"spark.driver.extraJavaOptions": options} if options else {}
    with spark_session("local[2]", "6g", conf) as spark, tempfile.TemporaryDirectory() as work:
        started = time.perf_counter()
        fit_spark_als(spark, plays, params, Path(work))
        seconds = time.perf_counter() - started
        print(json.dumps({"seconds": seconds, "nnz": plays.nnz, "classes": used(spark)}))


def blas_table(scale: float, repeat: int) -> None:
    rows = []
    for linear_algebra in ("system", "java"):
        runs = []
        for _ in range(repeat):
            shown = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--fit-once",
                    linear_algebra,
                    "--blas-scale",
                    str(scale),
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            runs.append(json.loads(shown.strip().splitlines()[-1]))
        seconds = statistics.median(run["seconds"] for run in runs)
        rows.append([linear_algebra, ", ".join(runs[0]["classes"]), f"{seconds:.1f}", runs])
    system, java = (float(row[2]) for row in rows)
    print_table(
        f"Spark ALS fit, rank 64, 10 iterations, {rows[0][3][0]['nnz']:,} plays, local[2] "
        f"(median of {repeat})",
        ["linear algebra", "classes", "fit s", "java ÷ this"],
        [[*row[:3], f"{java / float(row[2]):.2f}"] for row in rows],
    )
    if system == java:
        print("(the same: no system BLAS was found, both ran on Java code)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-scale", type=float, default=1.0, help="1× as a share of 360K")
    parser.add_argument("--multiples", default="1,2,4")
    parser.add_argument("--backends", default="spark,local")
    parser.add_argument("--timeout", type=float, default=7200.0, help="seconds per graph run")
    parser.add_argument("--blas-scale", type=float, default=0.05, help="the BLAS fit's size")
    parser.add_argument("--blas-repeat", type=int, default=2)
    parser.add_argument("--blas-only", action="store_true", help="the BLAS table alone")
    parser.add_argument("--fit-once", choices=("system", "java"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fit_once:
        fit_once(args.blas_scale, args.fit_once)
        return
    print_environment(__doc__.splitlines()[0])
    blas_table(args.blas_scale, args.blas_repeat)
    if args.blas_only:
        return
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
