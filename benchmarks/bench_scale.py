"""Scale: the whole graph on a Last.fm-360K-shaped set, then ALS fits by size, local vs Spark.

Issue 25's goal: the whole local graph, both models and tuning within its default budget
included, in under 5 minutes (300 s) at Last.fm-360K's size, peak memory beside it.

1. ``synthetic.generate_lastfm360k_shape`` writes the landing folder (about 360,000 users ×
   160,000 artists × 17.5 million plays at ``--scale 1``, gzip JSON Lines) under a temporary
   ``MUSICREC_HOME`` (not part of the graph's time).
2. Every asset of the graph is materialized on its own, in its own subprocess, on the local
   backend with the pipeline's default settings (``ModelSettings(feedback="implicit",
   backend="local")``, nothing else set): users, artists, ratings, rating_matrix,
   evaluation_split, als_tuning (the pipeline's own adaptive search of the ranking model and
   the item-kNN baseline, each within ``tuning_trials`` trials / ``tuning_minutes``; its
   trials, pruned trials, search seconds and choices are printed from the asset's metadata),
   als_model, and the serving assets (user_recommendations, artist_top_users,
   similar_artists, factor_tables: user_factors and artist_factors). The asset checks of a
   selected asset run in the same Dagster run, as they do in the pipeline. ``--graph-only``
   stops here.
3. A size sweep of ALS fits alone, local (``implicit``) beside Spark MLlib's ALS
   (``spark_als.fit_spark_als``, ``local[*]``): for each of ``--fractions`` of the users (the
   first rows of the stored matrix; ids are random, so a random sample with all its plays),
   same FIXED params (implicit, rank 64, λ 30, log1p confidence α 1, 15 iterations: a
   setting inside ``tuning.ranking_space``), λ converted as spark_als documents
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
beside each stage. The whole graph's line sums the stages' step times (``musicrec run`` is one
process, which starts once) against the 300 s goal, their process times beside it, and the
largest peak of any stage.

    .venv/bin/python benchmarks/bench_scale.py [--scale 1.0] [--graph-only]
        [--spark-timeout 1200] [--fractions 0.01,0.03,0.1,0.3,1,2,4] [--skip-spark] [--keep]
        [--sweep-home DIR]
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
# factor_tables first: user_recommendations' check reads user_factors (not one of its deps)
SERVING = ["factor_tables", "user_recommendations", "artist_top_users", "similar_artists"]
# each stage is one node of the graph: an asset, or a multi-asset (factor_tables)
GRAPH = [*INGEST, *MATRIX, "als_tuning", "als_model", *SERVING]
GOAL_S = 300  # issue 25: the whole local graph in under 5 minutes

# the size sweep's params (the graph tunes its own): a setting inside tuning.ranking_space
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

    return ModelSettings(feedback="implicit", backend="local")


def _plain(value):
    """A metadata value as JSON: a table as its records, JSON as itself, else a scalar or
    None."""
    import dagster as dg

    if isinstance(value, dg.TableMetadataValue):
        return [record.data for record in value.records]
    if isinstance(value, dg.JsonMetadataValue):
        return value.data
    value = getattr(value, "value", value)
    return value if isinstance(value, (int, float, str, bool)) or value is None else None


# the metadata kept whatever its size: what the tuning stage's report prints
_KEPT = {"search", "chosen_params", "params"}


def _error_text(error) -> str:
    """A step's error: the message of each error of its chain (Dagster's wrapper first, the
    exception itself last), then the end of the innermost stack."""
    if error is None:
        return "?"
    messages = []
    while error is not None:
        messages.append(error.message.strip())
        innermost, error = error, error.cause
    return "\n".join([*messages, *"".join(innermost.stack).strip().splitlines()[-4:]])


def _node_keys(defs, name: str) -> list:
    """The asset keys of the graph's node ``name`` (a multi-asset has several)."""
    for assets_def in defs.resolve_asset_graph().assets_defs:
        if assets_def.is_executable and assets_def.node_def.name == name:
            return sorted(assets_def.keys)
    raise KeyError(f"no asset node {name!r} in the definitions")


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
    keys = _node_keys(defs, name)
    result = job.execute_in_process(instance=instance, asset_selection=keys, raise_on_error=False)
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
                failures.append(f"{event.step_key}: {_error_text(event.step_failure_data.error)}")
    metadata = {}
    materializations = result.asset_materializations_for_node(name)
    for materialization in materializations:
        # a multi-asset's keys prefix theirs
        prefix = "" if len(materializations) == 1 else materialization.asset_key.path[-1] + "."
        for key, value in materialization.metadata.items():
            value = _plain(value)
            if value is not None and (key in _KEPT or len(str(value)) < 200):
                metadata[prefix + key] = value
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
    settings = _settings()
    return {
        "ratings": f"DuckDB read_json ≈ 4 M rows/s → ≈ {rows / 4e6:.1f} s for the file read",
        "als_tuning": f"budget {settings.tuning_trials} trials / {settings.tuning_minutes:g} min "
        f"a model's search, {settings.n_folds}-fold CV",
        "als_model": f"implicit rank 64, 15 iterations: ≈ {78 * scale:.0f} s a fit alone (the "
        "sweep's 78 s at scale 1); the asset fits twice",
        "graph": f"goal < {GOAL_S} s (issue 25)",
        "spark": "Spark local[2] ≈ 18× implicit at 2M plays, ≈ 3.7 GiB JVM",
    }


def _tuning_lines(result: dict) -> list[str]:
    """What als_tuning's metadata says its searches did: trials, pruned, seconds, choice."""
    metadata = result.get("metadata") or {}
    lines = [
        f"{row.get('model')} search: {row.get('trials')} trials ({row.get('pruned')} pruned) in "
        f"{row.get('seconds')} s, ended by {row.get('ended_by')}; chosen {row.get('chosen')} "
        f"({row.get('metric')} {row.get('cv_score')})"
        for row in metadata.get("search") or []
    ]
    if lines and not any(row.get("model") == "item_knn" for row in metadata["search"]):
        lines.append(
            "no item_knn search: its dense users × artists scores exceed "
            "baselines.ITEM_KNN_MAX_CELLS (the tuner's searches_item_knn)"
        )
    if "seconds" in metadata:
        lines.append(
            f"tuning: {metadata.get('trials', '?')} rows of tuning_trials, "
            f"{metadata['seconds']} s in the asset"
        )
    if metadata.get("chosen_params"):
        lines.append(f"chosen params: {json.dumps(metadata['chosen_params'])}")
    return lines


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
    parser.add_argument(
        "--graph-only", action="store_true", help="only the whole graph: no fit sweep after it"
    )
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
    settings = _settings()
    print(
        f"settings: ModelSettings defaults but feedback implicit, backend local (iterations "
        f"{settings.iterations}, {settings.n_folds} folds, tuning budget "
        f"{settings.tuning_trials} trials / {settings.tuning_minutes:g} min a model)"
    )
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
        if graph_ok and not args.graph_only:
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
        print("    " + "\n    ".join(str(error).strip().splitlines()[:12]))
    if result["stage"] == "als_tuning":
        for line in _tuning_lines(result):
            print("    " + line)


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
        if stage == "als_tuning":
            search = r.get("metadata", {}).get("search") or []
            ref += "".join(
                f"; {row.get('model')} {row.get('trials')} trials "
                f"({row.get('pruned')} pruned) {row.get('seconds')} s"
                for row in search
            )
        if stage == "als_model" and r.get("metadata", {}).get("fit_seconds"):
            fit = r["metadata"]["fit_seconds"]
            ranking = (r["metadata"].get("params") or {}).get("ranking") or {}
            iterations = ranking.get("iterations", _settings().iterations)
            ref += f"; train fit {fit:.1f} s = {fit / iterations:.2f} s/iter"
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
        f"{'meets' if step_total < GOAL_S else 'MISSES'} it (step sum "
        f"{step_total / GOAL_S:.2f}× the goal)"
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
        f"scale {args.scale:g}: the whole graph, default settings (tuning included)",
        ["stage", "step s", "process s", "peak RSS GiB", "tree peak GiB", "load", "target / ref"],
        rows,
    )
    print(
        "\nstep s: the Dagster steps (asset + its checks) from the run's events; process s: the "
        "subprocess with imports and set-up; peak RSS: the subprocess's ru_maxrss; tree peak: "
        "sampled RSS sum of its process group. generate is not part of the graph. The goal is "
        "judged on the step sum: `musicrec run` materializes the graph in one process, which "
        "starts once."
    )
    tuning = by_stage.get("als_tuning")
    if tuning is not None:
        print("\nals_tuning, from its metadata:")
        for line in _tuning_lines(tuning) or ["(no metadata: the stage failed)"]:
            print("  " + line)


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
