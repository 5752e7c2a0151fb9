"""Scale: the whole graph on a Last.fm-360K-shaped set, then ALS fits by size, local vs Spark.

1. ``synthetic.generate_lastfm360k_shape`` writes the landing folder (about 360,000 users ×
   160,000 artists × 17.5 million plays at ``--scale 1``, gzip JSON Lines) under a temporary
   ``MUSICREC_HOME``.
2. Every asset of the graph is materialized on its own, in its own subprocess, on the local
   backend with FIXED params (no tuning): users, artists, ratings, rating_matrix,
   evaluation_split; then a one-row ``tuning_trials`` table with the fixed params takes the
   place of ``als_tuning`` (implicit, rank 64, λ 30, log1p confidence α 1, 15 iterations: a
   setting inside ``tuning.ranking_space``); then als_model and the serving assets
   (user_recommendations, artist_top_users, similar_artists, factor_tables). The asset checks
   of a selected asset run in the same Dagster run, as they do in the pipeline.
3. A size sweep of ALS fits alone, local (``implicit``) beside Spark MLlib's ALS
   (``spark_als.fit_spark_als``, ``local[*]``): for each of ``--fractions`` of the users (the
   first rows of the stored matrix; ids are random, so a random sample with all its plays),
   same rank, iterations, confidence and α, λ converted as spark_als documents
   (λ·n_users/nnz). Each fit runs in its own subprocess, killed when it runs past
   ``--spark-timeout``; after Spark's first miss the larger sizes are not tried for Spark.
   Fractions above 1 (2 and 4 by default) are matrices of that many times the data set,
   generated in memory with the same distribution: how far the local fit goes.
   What finishes within the box is reported, and the script always ends.

Per stage: "step s" is the Dagster steps' time (STEP_START → STEP_SUCCESS/FAILURE of the asset
and its checks, from the run's event log), "process s" the subprocess's wall time (with imports
and resource set-up); "peak RSS" is the subprocess's ``ru_maxrss`` (``os.wait4``: its largest
single process) and "tree peak" the sampled sum of the RSS of every process of the subprocess's
group (for Spark: Python driver + JVM). Each stage runs once (a full-scale run takes minutes):
these are single, not best-of-N, timings on a shared machine; the load average is printed
beside each stage.

    .venv/bin/python benchmarks/bench_scale.py [--scale 1.0] [--spark-timeout 1200]
        [--fractions 0.01,0.03,0.1,0.3,1,2,4] [--skip-spark] [--keep] [--sweep-home DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import REPO_ROOT, print_environment, print_table

from musicrec_assets.home import Home

GIB = 1 << 30
ROWS_FULL = 17_500_000

INGEST = ["users", "artists", "ratings"]
MATRIX = ["rating_matrix", "evaluation_split"]
SERVING = ["user_recommendations", "artist_top_users", "similar_artists", "factor_tables"]
GRAPH = [*INGEST, *MATRIX, "tuning_trials", "als_model", *SERVING]

# the fixed params (no tuning): a setting inside tuning.ranking_space
FIXED = {
    "objective": "ranking",
    "rank": 64,
    "regularization": 30.0,
    "alpha": 1.0,
    "confidence": "log1p",
    "iterations": 15,
    "seed": 42,
}


# ---------------------------------------------------------------------------------------------
# stages: each runs in its own subprocess and writes its result as JSON


def _settings():
    from musicrec_assets.defs.resources import ModelSettings

    return ModelSettings(feedback="implicit", iterations=FIXED["iterations"], backend="local")


def _plain(value):
    value = getattr(value, "value", value)
    return value if isinstance(value, (int, float, str, bool)) or value is None else None


def _stage_generate(home: Path, scale: float) -> dict:
    from musicrec_assets.datasets.synthetic import generate_lastfm360k_shape

    counts = generate_lastfm360k_shape(Home(home).landing, scale=scale, seed=0)
    size = sum(f.stat().st_size for f in (Home(home).landing).rglob("*") if f.is_file())
    return {"success": True, "rows": counts, "landing_bytes": size}


def _stage_asset(home: Path, name: str) -> dict:
    import dagster as dg

    from musicrec_assets.definitions import build_definitions

    defs = build_definitions(home, _settings())
    instance = dg.DagsterInstance.ephemeral()
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=instance, asset_selection=[dg.AssetKey(name)], raise_on_error=False
    )
    starts, steps, failures, succeeded = {}, {}, [], set()
    for entry in instance.all_logs(result.run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type_value == "STEP_START":
            starts[event.step_key] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            steps[event.step_key] = entry.timestamp - starts.get(event.step_key, entry.timestamp)
            if event.event_type_value == "STEP_SUCCESS":
                succeeded.add(event.step_key)
            if event.event_type_value == "STEP_FAILURE":
                error = event.step_failure_data.error
                failures.append(f"{event.step_key}: {error.to_string() if error else '?'}")
    metadata = {}
    for materialization in result.asset_materializations_for_node(name):
        metadata = {k: _plain(v) for k, v in materialization.metadata.items()}
        metadata = {k: v for k, v in metadata.items() if v is not None and len(str(v)) < 200}
    # the asset counts as done when its step succeeded: a failed blocking check (e.g. ALS not
    # beating most-popular on random synthetic data) is reported, not a reason to stop
    return {
        "success": name in succeeded,
        "run_success": result.success,
        "steps": steps,
        "asset_step_s": sum(steps.values()) if steps else None,
        "errors": failures,
        "metadata": metadata,
    }


def _stage_tuning_trials(home: Path) -> dict:
    """Stands in for als_tuning: one chosen trial with the fixed params, the asset's columns."""
    import dataclasses
    from datetime import UTC, datetime

    import pandas as pd

    from musicrec_assets.defs.resources import warehouse_resource
    from musicrec_assets.evaluation.metrics import primary_metric
    from musicrec_assets.model.factors import TrainingParams
    from musicrec_assets.warehouse.tables import publish_table

    params = TrainingParams(**FIXED)
    metric, _ = primary_metric(params.objective)
    trials = pd.DataFrame(
        [
            {
                "trial": 1,
                "rank": params.rank,
                "regularization": params.regularization,
                "alpha": params.alpha,
                "confidence": params.confidence,
                "iterations": params.iterations,
                "feedback": "implicit",
                "metric": metric,
                "cv_score": float("nan"),
                "cv_metrics": json.dumps({}),
                "params": json.dumps(dataclasses.asdict(params)),
                "chosen": True,
                "mlflow_run_id": "bench_scale-fixed-params",
                "tuned_at": datetime.now(UTC).replace(tzinfo=None),
            }
        ]
    )
    # through the pipeline's working copy, published as the graph's own steps are
    with warehouse_resource(Home(home)).get_connection() as con:
        publish_table(con, "tuning_trials", [trials])
    return {"success": True, "metadata": {"params": json.dumps(dataclasses.asdict(params))}}


def _stage_fit(
    home: Path, out: Path, backend: str, fraction: float, scale: float, driver_memory: str
) -> dict:
    """One ALS fit with the fixed params on the first ``fraction`` of the stored matrix's
    users, or, for a fraction above 1, on a matrix of that many times the data set's size
    generated in memory (``synthetic.lastfm360k_play_matrix``: the same distribution); writes
    progress as it goes (a Spark fit may be killed at the time box)."""
    import dataclasses

    import duckdb

    from musicrec_assets.backends.spark.als import fit_spark_als, spark_session
    from musicrec_assets.datasets.synthetic import lastfm360k_play_matrix
    from musicrec_assets.model.factors import TrainingParams
    from musicrec_assets.model.implicit_als import fit_implicit_als
    from musicrec_assets.warehouse.interactions import load_matrix

    progress: dict = {"success": False}

    def note(**values) -> None:
        progress.update(values)
        out.write_text(json.dumps(progress))

    started = time.perf_counter()
    if fraction > 1:
        plays = lastfm360k_play_matrix(scale * fraction, seed=1)
        n_users = plays.shape[0]
    else:
        with duckdb.connect(str(Home(home).warehouse), read_only=True) as con:
            matrix = load_matrix(con, "implicit")
        n_users = max(1, round(matrix.values.shape[0] * fraction))
        # a slice copies: the whole matrix goes as soon as the part is cut (one copy at a time)
        plays = matrix.values[:n_users]
        del matrix
    params = TrainingParams(**FIXED)
    if backend == "spark":
        # implicit's plain λ → Spark's count-weighted λ, as spark_als's docstring derives it
        params = dataclasses.replace(
            params,
            regularization=params.regularization * n_users / plays.nnz,
            weighted_regularization=True,
        )
    note(load_s=time.perf_counter() - started, users=n_users, nnz=plays.nnz)
    if backend == "local":
        started = time.perf_counter()
        fit_implicit_als(plays, params)
        note(fit_s=time.perf_counter() - started, success=True)
        return progress
    started = time.perf_counter()
    with spark_session("local[*]", driver_memory) as spark:
        note(session_s=time.perf_counter() - started)
        started = time.perf_counter()
        fit_spark_als(spark, plays, params, Home(home).spark)
        note(fit_s=time.perf_counter() - started)
    note(success=True)
    return progress


def run_stage(args: argparse.Namespace) -> None:
    home = Path(args.home)
    out = home / "bench" / f"{_stage_name(args.stage, args.fraction)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        if args.stage == "generate":
            result = _stage_generate(home, args.scale)
        elif args.stage == "tuning_trials":
            result = _stage_tuning_trials(home)
        elif args.stage in ("local", "spark"):
            result = _stage_fit(
                home, out, args.stage, args.fraction, args.scale, args.spark_driver_memory
            )
        else:
            result = _stage_asset(home, args.stage)
    except Exception as error:  # reported by the parent
        result = {"success": False, "errors": [f"{type(error).__name__}: {error}"]}
    out.write_text(json.dumps(result, default=str))
    sys.exit(0 if result.get("success") else 1)


# ---------------------------------------------------------------------------------------------
# the parent: runs each stage as a subprocess, measures it, prints the table


def _group_rss(pgid: int) -> int:
    """Sum of the RSS (bytes) of every process in process group ``pgid``."""
    total = 0
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            # fields[0] is state: pgrp is field 5 of stat, rss (pages) field 24
            if int(fields[2]) == pgid:
                total += int(fields[21]) * page
        except (OSError, IndexError, ValueError):
            continue
    return total


def _stage_name(stage: str, fraction: float) -> str:
    """A stage's file names and label: the sweep's fits carry their size."""
    return f"{stage}-{fraction:g}" if stage in ("local", "spark") else stage


def launch(
    stage: str, home: Path, args: argparse.Namespace, timeout: float | None, fraction: float = 1
) -> dict:
    name = _stage_name(stage, fraction)
    command = [
        sys.executable,
        __file__,
        "--stage",
        stage,
        "--home",
        str(home),
        "--scale",
        str(args.scale),
        "--spark-driver-memory",
        args.spark_driver_memory,
        "--fraction",
        str(fraction),
    ]
    env = {**os.environ, "MUSICREC_HOME": str(home), "DAGSTER_HOME": str(Home(home).dagster)}
    log = home / "bench" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with open(log, "w") as output:
        process = subprocess.Popen(
            command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    peak_tree = 0
    stop = threading.Event()
    timed_out = threading.Event()

    def sample() -> None:
        nonlocal peak_tree
        while not stop.is_set():
            peak_tree = max(peak_tree, _group_rss(process.pid))
            if timeout is not None and time.perf_counter() - started > timeout:
                timed_out.set()
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)  # our subprocess and its JVM
                return
            stop.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    stop.set()
    sampler.join()
    if timed_out.is_set():  # a JVM left in the group after the driver died
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    path = home / "bench" / f"{name}.json"
    result = json.loads(path.read_text()) if path.is_file() else {"success": False}
    if not result.get("errors") and not result.get("success"):
        tail = log.read_text(errors="replace").strip().splitlines()[-5:]
        result["errors"] = ["exit status " + str(os.waitstatus_to_exitcode(status)), *tail]
    result.update(
        stage=name,
        process_s=seconds,
        peak_rss=usage.ru_maxrss * 1024,
        peak_tree=peak_tree,
        timed_out=timed_out.is_set(),
        load=(load_before, os.getloadavg()[0]),
    )
    return result


def _gib(value: float | None) -> str:
    return "—" if not value else f"{value / GIB:.2f}"


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def references(scale: float) -> dict[str, str]:
    rows = ROWS_FULL * scale
    fit_s = 10 * FIXED["iterations"]
    return {
        "ratings": f"DuckDB read_json ≈ 4 M rows/s → ≈ {rows / 4e6:.1f} s for the file read",
        "als_model": f"implicit rank 64 ≈ 10 s/iter, 0.5 GiB at scale 1 (≈ {fit_s} s a fit; "
        "the asset fits twice)",
        "graph": "whole graph < 10 min (600 s), peak < 8 GiB",
        "spark": "Spark local[2] ≈ 18× implicit at 2M plays, ≈ 3.7 GiB JVM",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of Last.fm-360K (1)")
    parser.add_argument(
        "--spark-timeout", type=float, default=1200, help="seconds one Spark fit may take (1200)"
    )
    parser.add_argument(
        "--fractions",
        default="0.01,0.03,0.1,0.3,1,2,4",
        help="sizes of the fit sweep as fractions of the users; above 1, generated in memory "
        "(0.01,0.03,0.1,0.3,1,2,4)",
    )
    parser.add_argument("--skip-spark", action="store_true", help="no Spark fits in the sweep")
    parser.add_argument("--keep", action="store_true", help="keep the temporary MUSICREC_HOME")
    parser.add_argument(
        "--sweep-home", help="only the fit sweep, on a MUSICREC_HOME kept by an earlier --keep"
    )
    parser.add_argument("--spark-driver-memory", default="8g", help="Spark driver heap (8g)")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    parser.add_argument("--fraction", type=float, default=1.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        run_stage(args)
        return

    print_environment(f"bench_scale: Last.fm-360K shape at scale {args.scale:g}")
    print("(single runs, not best-of-N: per-stage timings here are one measurement each)")
    fractions = [float(f) for f in args.fractions.split(",") if f]
    if args.sweep_home:
        sweep = fit_sweep(Path(args.sweep_home).resolve(), args, fractions)
        _sweep_summary(args, sweep)
        return
    out_root = REPO_ROOT / "benchmarks" / "out"
    out_root.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix=f"scale-{args.scale:g}-", dir=out_root))
    print(f"MUSICREC_HOME {home}")
    results: list[dict] = []
    try:
        generated = launch("generate", home, args, None)
        results.append(generated)
        _report(generated)
        if generated.get("success"):
            for stage in GRAPH:
                result = launch(stage, home, args, None)
                results.append(result)
                _report(result)
                if not result.get("success"):
                    print(f"!! stage {stage} failed: the stages after it are skipped")
                    break
        graph_ok = len(results) == 1 + len(GRAPH) and all(r.get("success") for r in results)
        _summary(args, results, references(args.scale))
        if graph_ok:
            _sweep_summary(args, fit_sweep(home, args, fractions))
    finally:
        if args.keep:
            print(f"\nkept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)


def fit_sweep(home: Path, args: argparse.Namespace, fractions: list[float]) -> list[dict]:
    """Local and Spark fits at growing sizes; Spark stops at its first miss of the box."""
    print(f"\nfit sweep: fractions {fractions}, each Spark fit boxed at {args.spark_timeout:g} s")
    rows, spark_missed = [], False
    for fraction in fractions:
        row = {"fraction": fraction, "local": launch("local", home, args, None, fraction)}
        _report(row["local"])
        if not args.skip_spark and not spark_missed:
            row["spark"] = launch("spark", home, args, args.spark_timeout, fraction)
            _report(row["spark"])
            spark_missed = not row["spark"].get("success")
        rows.append(row)
    return rows


def _report(result: dict) -> None:
    state = "ok" if result.get("success") else ("TIMED OUT" if result["timed_out"] else "FAILED")
    print(
        f"  {result['stage']:<22} {state:<9} step {_s(result.get('asset_step_s')):>7} s"
        f"  process {result['process_s']:7.1f} s  peak RSS {_gib(result['peak_rss'])} GiB"
        f"  tree {_gib(result['peak_tree'])} GiB  load {result['load'][0]:.1f}→"
        f"{result['load'][1]:.1f}",
        flush=True,
    )
    steps = result.get("steps") or {}
    if len(steps) > 1:  # the asset and its checks
        print("    steps: " + ", ".join(f"{key} {seconds:.1f} s" for key, seconds in steps.items()))
    if result.get("success") and result.get("errors"):
        print("    (the asset materialized; a check or another step failed:)")
    for error in result.get("errors") or []:
        print("    " + "\n    ".join(str(error).strip().splitlines()[-12:]))


def _summary(args, results: list[dict], refs: dict[str, str]) -> None:
    by_stage = {r["stage"]: r for r in results}
    generated = by_stage["generate"]
    rows_info = generated.get("rows", {})
    print(
        f"\ndata: {rows_info.get('users', '?'):,} users × {rows_info.get('artists', '?'):,} "
        f"artists × {rows_info.get('ratings', '?'):,} plays, "
        f"{generated.get('landing_bytes', 0) / (1 << 20):,.0f} MiB gzip JSON Lines"
        if rows_info
        else "\ndata: generation failed"
    )
    rows = []
    for r in results:
        stage = r["stage"]
        ref = refs.get(stage, "")
        if stage == "ratings" and r.get("asset_step_s"):
            ref += (
                f"; measured {rows_info.get('ratings', 0) / r['asset_step_s'] / 1e6:.2f} M rows/s"
            )
        if stage == "als_model" and r.get("metadata", {}).get("fit_seconds"):
            fit = r["metadata"]["fit_seconds"]
            ref += f"; train fit {fit:.1f} s = {fit / FIXED['iterations']:.2f} s/iter"
        rows.append(
            [
                stage + ("" if r.get("success") else " (FAILED)"),
                _s(r.get("asset_step_s")),
                _s(r["process_s"]),
                _gib(r["peak_rss"]),
                _gib(r["peak_tree"]),
                f"{r['load'][0]:.1f}→{r['load'][1]:.1f}",
                ref,
            ]
        )
    graph = [r for r in results if r["stage"] != "generate"]
    complete = len(graph) == len(GRAPH) and all(r.get("success") for r in graph)
    step_total = sum(r.get("asset_step_s") or 0 for r in graph)
    process_total = sum(r["process_s"] for r in graph)
    peak = max((r["peak_rss"] for r in graph), default=0)
    # one `musicrec run` is one process: the steps, plus one start-up (not one per stage)
    verdict = (
        f"{'meets' if step_total < 600 else 'MISSES'} < 600 s (step sum); "
        f"{'meets' if peak < 8 * GIB else 'MISSES'} < 8 GiB"
        if complete
        else "INCOMPLETE: a stage failed"
    )
    rows.append(
        [
            "whole graph (sum)",
            _s(step_total),
            _s(process_total),
            _gib(peak),
            _gib(max((r["peak_tree"] for r in graph), default=0)),
            "",
            f"{refs['graph']}: {verdict}",
        ]
    )
    print_table(
        f"scale {args.scale:g}: fixed params {json.dumps(FIXED)}",
        ["stage", "step s", "process s", "peak RSS GiB", "tree peak GiB", "load", "target / ref"],
        rows,
    )
    print(
        "\nstep s: the Dagster steps (asset + its checks) from the run's events; process s: the "
        "subprocess with imports and set-up; peak RSS: the subprocess's ru_maxrss; tree peak: "
        "sampled RSS sum of its process group. tuning_trials is the fixed-params table written "
        "in place of als_tuning; generate is not part of the graph. The target is judged on "
        "the step sum: `musicrec run` materializes the graph in one process, which starts once."
    )


def _sweep_summary(args, sweep: list[dict]) -> None:
    rows = []
    for row in sweep:
        local, spark = row["local"], row.get("spark")
        local_fit = local.get("fit_s")
        if spark is None:
            spark_cells = ["not run", "—", "—"]
        elif spark.get("fit_s") is not None:
            ratio = f"{spark['fit_s'] / local_fit:.1f}×" if local_fit else "—"
            spark_cells = [_s(spark["fit_s"]), _gib(spark["peak_tree"]), ratio]
        else:
            state = "TIMED OUT" if spark["timed_out"] else "FAILED"
            spark_cells = [f"{state} ({spark['process_s']:.0f} s)", _gib(spark["peak_tree"]), "—"]
        rows.append(
            [
                f"{row['fraction']:g}",
                f"{local.get('users', 0):,}",
                f"{local.get('nnz', 0):,}",
                _s(local_fit),
                _gib(local["peak_rss"]),
                *spark_cells,
            ]
        )
    print_table(
        f"ALS fit alone, implicit (local) beside Spark local[*]: fixed params, Spark boxed at "
        f"{args.spark_timeout:g} s a fit; Spark sizes past its first miss are not run",
        [
            "size (× data set)",
            "users",
            "plays",
            "local fit s",
            "local peak RSS GiB",
            "Spark fit s",
            "Spark tree peak GiB",
            "Spark ÷ local",
        ],
        rows,
    )
    print(f"reference: {references(args.scale)['spark']}")


if __name__ == "__main__":
    main()
