"""The Spark MLlib backend: ``pyspark.ml.recommendation.ALS`` fitted on Parquet, as a FactorModel.

Data path, as on a cluster that reads shared storage: pyarrow writes the (row, column, value)
interactions to Parquet under ``workdir``, Spark reads that file, fits, and writes its user and
item factors back to Parquet, which pyarrow reads into the same :class:`FactorModel` the local
backends return (float32 factors in index order, zero factors for rows Spark never saw). On a
real cluster ``workdir`` must be a folder every executor sees under the same path.

Matching the local backends
---------------------------
Explicit. Spark minimizes ``Σ (r_ui − x_u·y_i)² + λ (Σ_u n_u ‖x_u‖² + Σ_i n_i ‖y_i‖²)`` with
n_u, n_i the rating counts (ALS-WR) and no biases: exactly
:func:`musicrec_assets.model.explicit_als.fit_explicit_als` with ``use_biases=False`` and
``weighted_regularization=True``, which :func:`fit_spark_als` therefore requires. The same λ
means the same objective; the tests check that both reach the same held-out RMSE.

Implicit. For an entry with value r > 0 Spark uses preference 1 and confidence ``1 + alpha·r``
(it reads a value ≤ 0 as a negative preference: scaled play counts are positive, except bm25
weights of an artist nearly every user played, whose idf is ≤ 0). We feed it
``scale(plays)`` of :mod:`musicrec_assets.model.confidence` (raw, log1p or bm25, fitted on the
training matrix) with ``alpha = params.alpha``, so its confidence is our
``c = 1 + α·scale(plays)``: the matrix ``implicit`` receives from
:func:`musicrec_assets.model.implicit_als.fit_implicit_als`. The regularization differs: Spark's
implicit ALS also scales λ by each row's count of observed entries, ``λ n_u`` and ``λ n_i``,
whereas ``implicit`` uses a plain λ for every row. No conversion makes the two objectives equal
(users and items have very different counts); dividing implicit's λ by the mean number of
entries per user, ``λ_spark = λ_implicit · n_users / nnz``, gives models of the same quality:
on Last.fm-2k (39 artists per training user) implicit's λ 30 and Spark's λ 0.76 both reach
NDCG@10 0.25. Spark's useful λ are thus one to two orders of magnitude smaller and each
backend needs its own grid. A Spark implicit model carries ``weighted_regularization=True``;
folding in a new user must then use ``λ n_u`` as well.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.sparse import csr_matrix

from musicrec_assets.model.confidence import fit_confidence
from musicrec_assets.model.factors import FactorModel, TrainingParams
from musicrec_assets.model.sparse import to_triples

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# Spark's default of 200 shuffle partitions turns every small local shuffle into 200 tasks
_LOCAL_SHUFFLE_PARTITIONS = 8


def missing_spark_requirement() -> str | None:
    """What to install before a SparkSession can start, or None when nothing is missing."""
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed: pip install 'musicrec[spark]'"
    java_home = os.environ.get("JAVA_HOME")
    # spark-submit runs $JAVA_HOME/bin/java when JAVA_HOME is set, else java from PATH
    has_java = (
        Path(java_home, "bin", "java").exists() if java_home else shutil.which("java") is not None
    )
    if not has_java:
        return (
            "Spark needs Java 17 but no java is on PATH (or in JAVA_HOME): "
            "apt-get install openjdk-17-jre-headless"
        )
    return None


@contextmanager
def spark_session(
    master: str = "local[*]", driver_memory: str = "4g", conf: dict[str, str] | None = None
) -> Iterator[SparkSession]:
    """A quiet SparkSession for the duration of a ``with`` block, stopped on exit.

    Spark runs one SparkContext per process and ``getOrCreate`` hands out the running one, so
    open one session per process (e.g. one per Dagster run) and pass it around: leaving a
    nested ``spark_session`` would stop the outer one.

    Parameters
    ----------
    master : str
        Spark master URL; ``local[n]`` runs n worker threads in this process's JVM.
    driver_memory : str
        JVM heap of the driver (which also holds the executors in local mode).
    conf : dict, optional
        More Spark settings; they override the defaults below.

    Yields
    ------
    SparkSession
        With the UI and console progress bars off, log level ERROR, 8 shuffle partitions,
        and a temporary folder for Spark's scratch files and ALS checkpoints (removed on
        exit).

    Raises
    ------
    RuntimeError
        If pyspark or Java is missing; the one-line message says what to install.
    """
    missing = missing_spark_requirement()
    if missing is not None:
        raise RuntimeError(missing)
    from pyspark.sql import SparkSession

    # executors of a cluster bound to loopback can reach the driver only on loopback too
    on_loopback = master.startswith(("spark://127.0.0.1:", "spark://localhost:"))
    with tempfile.TemporaryDirectory(prefix="musicrec-spark-") as scratch:
        settings = {
            "spark.driver.memory": driver_memory,
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.sql.shuffle.partitions": str(_LOCAL_SHUFFLE_PARTITIONS),
            "spark.local.dir": str(Path(scratch, "local")),
            **(
                {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"}
                if on_loopback
                else {}
            ),
            **(conf or {}),
        }
        builder = SparkSession.builder.master(master).appName("musicrec")
        for key, value in settings.items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
        try:
            spark.sparkContext.setLogLevel("ERROR")
            # ALS cuts its lineage every 10 iterations only with a checkpoint folder; without
            # one, long fits overflow the JVM stack
            spark.sparkContext.setCheckpointDir(str(Path(scratch, "checkpoints")))
            yield spark
        finally:
            spark.stop()


def fit_spark_als(
    spark: SparkSession,
    matrix: csr_matrix,
    params: TrainingParams,
    workdir: Path,
) -> FactorModel:
    """Factorize a users × items matrix with Spark MLlib's ALS.

    Parameters
    ----------
    spark : SparkSession
        E.g. from :func:`spark_session`.
    matrix : csr_matrix
        users × items, data = ratings (explicit) or play counts (implicit); stored entries are
        the observed interactions.
    params : TrainingParams
        Uses feedback, rank, regularization (Spark's regParam, scaled by each row's count),
        iterations, seed and, for implicit feedback, alpha and confidence. Explicit needs
        ``use_biases=False``; both need ``weighted_regularization=True``, as that is the
        model Spark fits.
    workdir : Path
        Folder for the Parquet files exchanged with Spark (a temporary subfolder, removed on
        return); on a cluster it must be shared storage.

    Returns
    -------
    FactorModel
        float32 factors in row / column order, zero for users and items without interactions;
        no biases (global_mean 0); for implicit feedback the confidence scaler's statistics in
        ``extras``, as :func:`~musicrec_assets.model.implicit_als.fit_implicit_als` stores them.
    """
    from pyspark.ml.recommendation import ALS

    if params.feedback == "explicit" and params.use_biases:
        raise ValueError("Spark's explicit ALS has no biases: set use_biases=False")
    if not params.weighted_regularization:
        raise ValueError(
            "Spark's ALS always scales λ by each row's count: set weighted_regularization=True"
        )
    matrix = csr_matrix(matrix)
    n_users, n_items = matrix.shape
    implicit = params.feedback == "implicit"
    scaler = fit_confidence(matrix, params.confidence, params.alpha) if implicit else None
    values = scaler.scale(matrix) if implicit else matrix

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=workdir, prefix="spark-als-") as exchange:
        exchange = Path(exchange)
        interactions_path = exchange / "interactions.parquet"
        _write_interactions(values, interactions_path)
        als = ALS(
            rank=params.rank,
            regParam=params.regularization,
            maxIter=params.iterations,
            implicitPrefs=implicit,
            alpha=params.alpha,
            userCol="user_idx",
            itemCol="item_idx",
            ratingCol="value",
            coldStartStrategy="drop",
            seed=params.seed,
            nonnegative=False,
            # one block per core: Spark's default of 10 blocks made local fits twice as slow
            numUserBlocks=spark.sparkContext.defaultParallelism,
            numItemBlocks=spark.sparkContext.defaultParallelism,
        )
        model = als.fit(spark.read.parquet(interactions_path.as_uri()))
        # written by Spark and read back in bulk: no per-row traffic through py4j
        model.userFactors.write.parquet((exchange / "user_factors").as_uri())
        model.itemFactors.write.parquet((exchange / "item_factors").as_uri())
        user_factors = _read_factors(exchange / "user_factors", n_users, params.rank)
        item_factors = _read_factors(exchange / "item_factors", n_items, params.rank)

    return FactorModel(
        params=params,
        user_factors=user_factors,
        item_factors=item_factors,
        extras=scaler.extras() if implicit else {},
    )


def _write_interactions(values: csr_matrix, path: Path) -> None:
    """(user_idx INTEGER, item_idx INTEGER, value FLOAT) Parquet.

    Spark's ALS needs integer ids and computes in float32, so narrower columns lose nothing.
    """
    rows, cols, data = to_triples(values)
    interactions = pa.table(
        {
            "user_idx": rows.astype(np.int32),
            "item_idx": cols.astype(np.int32),
            "value": data.astype(np.float32),
        }
    )
    pq.write_table(interactions, path)


def _read_factors(folder: Path, n_rows: int, rank: int) -> np.ndarray:
    """Spark's (id, features) factor Parquet as an (n_rows, rank) float32 array by id; rows
    Spark never saw stay zero."""
    table = pq.read_table(folder)
    ids = table.column("id").to_numpy()
    features = table.column("features").combine_chunks().flatten()
    factors = np.zeros((n_rows, rank), dtype=np.float32)
    factors[ids] = features.to_numpy().reshape(len(ids), rank)
    return factors
