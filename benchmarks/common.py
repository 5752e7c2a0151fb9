"""Shared helpers of the benchmark scripts: best-of-N timing, peak memory, tables, data loaders.

Timings are wall-clock (``time.perf_counter``) and every one is the best of N runs: the machine
is shared, so the minimum is the least disturbed run, not a typical one.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
import implicit
import numpy as np
import pandas as pd
import scipy
from scipy.sparse import csr_matrix
from tabulate import tabulate
from threadpoolctl import threadpool_info

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO_ROOT / "musicrec_assets" / "sample_data"
# licence-restricted: read where it is kept, never copied into the repository
LASTFM_DIR = REPO_ROOT.parent / "shared" / "datasets" / "lastfm-hetrec2011-2k"
FILMTRUST_DIR = REPO_ROOT.parent / "shared" / "datasets" / "filmtrust"

MIB = 1 << 20


class Timed(NamedTuple):
    seconds: float  # the fastest run
    result: Any  # what the last run returned


def best_of(repeat: int, run: Callable[[], Any]) -> Timed:
    """Fastest of ``repeat`` calls of ``run()``."""
    return best_of_each(repeat, {"run": run})["run"]


def best_of_each(repeat: int, runs: dict[str, Callable[[], Any]]) -> dict[str, Timed]:
    """``best_of`` for several callables taking turns run by run, so that a burst of load on the
    shared machine hits each of them alike."""
    best = dict.fromkeys(runs, float("inf"))
    results = {}
    for _ in range(repeat):
        for name, run in runs.items():
            started = time.perf_counter()
            results[name] = run()
            best[name] = min(best[name], time.perf_counter() - started)
    return {name: Timed(best[name], results[name]) for name in runs}


def traced_peak_mib(run: Callable[[], Any]) -> float:
    """Peak of the memory ``run()`` allocates through Python and numpy (tracemalloc), in MiB.

    Run separately from the timings (tracing slows allocation down). Memory that native
    libraries allocate by themselves (DuckDB, OpenBLAS buffers) is not seen.
    """
    tracemalloc.start()
    try:
        run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / MIB


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ratio(numerator: float, denominator: float) -> str:
    if not denominator or not np.isfinite(numerator) or not np.isfinite(denominator):
        return "—"
    return f"{numerator / denominator:.2f}×"


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    print(f"\n{title}")
    print(tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True))


def print_environment(description: str) -> None:
    blas = ", ".join(
        f"{info['internal_api']} {info.get('version') or ''} ×{info['num_threads']}".strip()
        for info in threadpool_info()
        if info["user_api"] == "blas"
    )
    print(description)
    print(
        f"python {platform.python_version()} · numpy {np.__version__} · scipy {scipy.__version__}"
        f" · duckdb {duckdb.__version__} · implicit {implicit.__version__}"
        f" · {len(os.sched_getaffinity(0))} cores · BLAS {blas}"
    )
    print("every time is the best of N runs on a shared machine")


def repeat_argument(parser: argparse.ArgumentParser, default: int = 3) -> None:
    parser.add_argument(
        "--repeat", type=int, default=default, help=f"runs per timing, the best kept ({default})"
    )


def _csr(users: pd.Series, items: pd.Series, values: np.ndarray) -> tuple[csr_matrix, ...]:
    """users × items CSR; ids are indexed in sorted order, as the warehouse's index tables do."""
    user_index, user_ids = pd.factorize(users, sort=True)
    item_index, item_ids = pd.factorize(items, sort=True)
    matrix = csr_matrix(
        (values.astype(np.float32), (user_index, item_index)),
        shape=(len(user_ids), len(item_ids)),
    )
    matrix.sum_duplicates()
    return matrix, np.asarray(user_ids, dtype=str), np.asarray(item_ids, dtype=str)


def load_sample_ratings() -> tuple[csr_matrix, np.ndarray, np.ndarray]:
    """The bundled demo sample's explicit ratings (users × artists), with the row/column ids."""
    ratings = pd.read_json(
        SAMPLE_DIR / "ratings" / "ratings.jsonl.gz", lines=True, compression="gzip", dtype=False
    )
    return _csr(ratings["user_id"], ratings["artist_id"], ratings["rating"].to_numpy())


def load_lastfm_plays() -> tuple[csr_matrix, np.ndarray, np.ndarray] | None:
    """Last.fm-2k play counts (users × artists) with the ids, or None when the data is absent."""
    path = LASTFM_DIR / "user_artists.dat"
    if not path.is_file():
        print(f"\n(Last.fm-2k not found at {LASTFM_DIR}: its rows are skipped)")
        return None
    plays = pd.read_csv(path, sep="\t", dtype={"userID": str, "artistID": str})
    return _csr(plays["userID"], plays["artistID"], plays["weight"].to_numpy())


def load_filmtrust_ratings() -> tuple[csr_matrix, np.ndarray, np.ndarray] | None:
    """FilmTrust's half-star ratings (users × films) with the ids, or None when the data is
    absent. A pair rated twice keeps its later rating, as a re-rating replaces the first."""
    path = FILMTRUST_DIR / "ratings.txt"
    if not path.is_file():
        print(f"\n(FilmTrust not found at {FILMTRUST_DIR}: its rows are skipped)")
        return None
    ratings = pd.read_csv(
        path,
        sep=" ",
        header=None,
        names=["user", "item", "rating"],
        dtype={"user": str, "item": str},
    ).drop_duplicates(["user", "item"], keep="last")
    return _csr(ratings["user"], ratings["item"], ratings["rating"].to_numpy())
