"""The Spark MLlib backend: ``pyspark.ml.recommendation.ALS`` from Parquet to Parquet.

Data path, as on a cluster that reads shared storage: :func:`fit_spark_frame` takes the
(user_idx, item_idx, value) interactions as a Spark DataFrame (e.g. ``spark.read.parquet``),
fits in Spark and writes the model with Spark's writers in the layout of
:mod:`~musicrec_assets.backends.spark.factors`. The driver holds neither the interactions nor the
factors: only scalars (μ, bm25's average length) and, for bm25, the idf of every item, which the
model keeps in ``extras`` for folding in new users. :func:`fit_spark_als` serves a scipy matrix:
pyarrow writes it to Parquet under ``workdir``, and the model folder is read back into the same
:class:`FactorModel` the local backends return (float32 factors in index order, zero factors
for rows Spark never saw). On a real cluster both folders must be storage every executor sees
under the same path.

Matching the local backends
---------------------------
Explicit. :func:`musicrec_assets.model.explicit_als.fit_explicit_als` with
``weighted_regularization=True`` minimizes::

    Σ (r_ui − μ − b_u − b_i − x_u·y_i)² + λ (Σ_u n_u ‖x_u‖² + Σ_i n_i ‖y_i‖²)
                                      + λ_b (Σ_u b_u² + Σ_i b_i²)

with n_u, n_i the rating counts. Spark's ALS minimizes this without μ and biases (ALS-WR: it
always multiplies regParam by each row's count, so ``weighted_regularization=True`` is
required). With ``use_biases`` the full objective is minimized by block coordinate descent:
μ is the mean rating; with the factors fixed each bias has the closed form::

    b_u = Σ_i∈R_u (r_ui − μ − b_i − x_u·y_i) / (n_u + λ_b)

(with ``bias_regularization`` None, ``/ ((1 + λ) n_u)``: the λ n_u penalty the factors get),
alternated between users and items in sweeps of aggregations and joins (three from zero
biases, then one per round, from the last round's biases); with the biases fixed, the factor
part is exactly Spark's ALS on the residuals r_ui − μ − b_u − b_i. This block coordinate
descent converges slowly: for a user or artist with few ratings the factors and the bias
compete for the same residual, and each round moves the bias only a fixed share of the way
to its limit (about a fifth on the sample ratings, where most artists have one or two). So
after three rounds, starting from zero factors, each row's biases are extrapolated to the
limit of their geometric series (Aitken's Δ²), and a fourth round of sweeps and ALS ends the
fit. That reaches the local fit's held-out RMSE within 1% (the tests check it); plain
alternation needs over ten rounds for that. Without biases it is plain Spark ALS on the
ratings, the same objective with μ = b_u = b_i = 0.

Implicit. For an entry with value r > 0 Spark uses preference 1 and confidence ``1 + alpha·r``
(it reads a value ≤ 0 as a negative preference: scaled play counts are positive, except bm25
weights of an artist nearly every user played, whose idf is ≤ 0). We feed it ``scale(x)`` of
:mod:`musicrec_assets.model.confidence`, computed in Spark by :func:`scale_confidence_frame`
with the formulas of ``ConfidenceScaler.scale`` (bm25's idf and average length from the
training interactions), and ``alpha = params.alpha``, so its confidence is our
``c = 1 + α·scale(x)``: the matrix ``implicit`` receives from
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

import atexit
import importlib.util
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.sparse import csr_matrix

from musicrec_assets.backends.spark.factors import SparkFactors, write_side
from musicrec_assets.model.confidence import ConfidenceScaler
from musicrec_assets.model.explicit_als import bias_penalty
from musicrec_assets.model.factors import FactorModel, TrainingParams
from musicrec_assets.model.sparse import to_triples

if TYPE_CHECKING:
    from pyspark.ml.recommendation import ALS, ALSModel
    from pyspark.sql import DataFrame, SparkSession

# Spark's default of 200 shuffle partitions turns every small local shuffle into 200 tasks
_LOCAL_SHUFFLE_PARTITIONS = 8
# A biased explicit fit (see the module docstring): rounds of (bias sweeps, ALS), the biases of
# the first three extrapolated to their limit before the fourth. Each sweep is user-then-item
# and two Spark jobs. The first round starts from zero biases and takes three sweeps; a later
# round starts from the last round's biases and one sweep does: with (3, 1, 1, 1) sweeps the
# fit took half the time of (3, 3, 3, 3) on the sample ratings and landed as close to the local
# RMSE (0.02% and 0.03% on the two data sets of test_spark_als.py, against 0.07% and 0.06%).
# Rounds with 5 instead of all ALS iterations were 25% faster but landed 0.9% from the local
# RMSE on the sample ratings, too close to the 1% the tests allow
_BIAS_ROUNDS = 4
_EXTRAPOLATED_ROUND = 2
_FIRST_ROUND_SWEEPS = 3
_WARM_ROUND_SWEEPS = 1
_MAX_CONVERGENCE_RATIO = 0.95


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


# Spark's ALS solves with dev.ludovic.netlib: the system's BLAS and LAPACK through JNI where
# its JVM can dlopen libblas.so.3 and liblapack.so.3, else Java code (VectorBLAS or F2jBLAS,
# F2jLAPACK). Native, a rank-64 fit of 875,000 plays took 25 s here against 44 s on Java
# (make bench-spark)
NATIVE_LINEAR_ALGEBRA = ("JNIBLAS", "JNILAPACK")
SYSTEM_BLAS_PACKAGES = "libopenblas0-pthread liblapack3"


def linear_algebra(spark: SparkSession) -> tuple[str, str]:
    """The BLAS and LAPACK (their class names) the driver's JVM runs Spark's ALS on:
    :data:`NATIVE_LINEAR_ALGEBRA` where it found the system's libraries. A cluster's executors
    find theirs on their own machines."""
    netlib = spark.sparkContext._jvm.dev.ludovic.netlib
    return (
        netlib.blas.BLAS.getInstance().getClass().getSimpleName(),
        netlib.lapack.LAPACK.getInstance().getClass().getSimpleName(),
    )


def _warn_without_native_linear_algebra(spark: SparkSession) -> None:
    found = linear_algebra(spark)
    if found != NATIVE_LINEAR_ALGEBRA:
        warnings.warn(
            f"Spark's ALS runs on Java linear algebra ({', '.join(found)}): install a system "
            f"BLAS and LAPACK for fits about 1.7x as fast (Debian: apt-get install "
            f"{SYSTEM_BLAS_PACKAGES})",
            stacklevel=3,
        )


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
    # the Python workers of pandas UDFs need this interpreter's packages; Spark takes the
    # workers' interpreter from this variable (its spark.pyspark.python setting is not read
    # when pyspark starts the JVM itself), in local mode and on a cluster's executors
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
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
            _warn_without_native_linear_algebra(spark)
            # ALS cuts its lineage every 10 iterations only with a checkpoint folder; without
            # one, long fits overflow the JVM stack
            spark.sparkContext.setCheckpointDir(str(Path(scratch, "checkpoints")))
            yield spark
        finally:
            spark.stop()


# the process's one shared session: (its settings, the session, what stops it)
_shared: tuple[tuple, SparkSession, ExitStack] | None = None
_stop_registered_at_exit = False


def shared_spark_session(
    master: str = "local[*]", driver_memory: str = "4g", conf: dict[str, str] | None = None
) -> SparkSession:
    """:func:`spark_session` kept open until this process exits, so that every Spark step of
    one in-process run (``musicrec run``) and every test reuse one JVM and one application
    instead of starting them (seconds each, more on a cluster) once per step. Asking with
    other settings stops the running one and starts anew."""
    global _shared, _stop_registered_at_exit
    key = (master, driver_memory, tuple(sorted((conf or {}).items())))
    if _shared is None or _shared[0] != key:
        stop_shared_spark_session()
        stack = ExitStack()
        session = stack.enter_context(spark_session(master, driver_memory, conf))
        if not _stop_registered_at_exit:
            # after the session started, so that it runs before (atexit runs last-registered
            # first) pyspark's own handler, which ends the JVM the stop needs
            atexit.register(stop_shared_spark_session)
            _stop_registered_at_exit = True
        _shared = (key, session, stack)
    return _shared[1]


def stop_shared_spark_session() -> None:
    """Stop the session :func:`shared_spark_session` keeps, if one runs."""
    global _shared
    if _shared is not None:
        stack, _shared = _shared[2], None
        stack.close()


def fit_spark_frame(
    spark: SparkSession,
    interactions: DataFrame,
    params: TrainingParams,
    folder: Path,
    n_users: int,
    n_items: int,
) -> SparkFactors:
    """Fit Spark MLlib's ALS on interactions in Spark and write the model as Parquet.

    Parameters
    ----------
    spark : SparkSession
        E.g. from :func:`spark_session`.
    interactions : pyspark.sql.DataFrame
        ``user_idx INT, item_idx INT, value FLOAT``, one row per observed entry of the
        users × items matrix: ratings (explicit) or play counts (implicit).
    params : TrainingParams
        Uses objective, rank, regularization (Spark's regParam, scaled by each row's count),
        iterations, seed, use_biases (rating) and alpha and confidence (ranking). Needs
        ``weighted_regularization=True``, as that is the model Spark fits.
    folder : Path
        Where the model goes, a path that does not exist yet; on a cluster, shared storage.
    n_users, n_items : int
        The matrix shape: rows and columns without interactions are part of the model
        (bm25's idf and average length count them, as locally).

    Returns
    -------
    SparkFactors
        The model in ``folder``: user and item factors and biases (0 without biases) as
        Parquet, μ in ``model.json`` for a rating model with biases, the confidence
        scaler's statistics in ``extras.npz`` for bm25.

    Raises
    ------
    ValueError
        If ``params.weighted_regularization`` is False.
    """
    from pyspark.sql import functions as F

    if not params.weighted_regularization:
        raise ValueError(
            "Spark's ALS always scales λ by each row's count: set weighted_regularization=True"
        )
    folder = Path(folder)
    folder.mkdir(parents=True)
    ranking = params.objective == "ranking"
    has_biases = not ranking and params.use_biases
    global_mean, extras = 0.0, {}
    user_bias = item_bias = None
    interactions = interactions.select(
        F.col("user_idx").cast("int"),
        F.col("item_idx").cast("int"),
        F.col("value").cast("double"),
    )
    # the bias fit and bm25's statistics read the interactions several times, ALS once
    if has_biases or (ranking and params.confidence == "bm25"):
        interactions = interactions.persist()
    try:
        if ranking:
            scaled, scaler = scale_confidence_frame(
                interactions, params.confidence, params.alpha, n_users, n_items
            )
            model = _als(spark, params).fit(scaled)
            extras = scaler.extras()
        elif has_biases:
            model, user_bias, item_bias, global_mean = _fit_biased_explicit(
                spark, interactions, params
            )
        else:
            model = _als(spark, params).fit(interactions)
        n_files = spark.sparkContext.defaultParallelism
        write_side(folder, "users", _als_rows(model.userFactors, user_bias, "user_idx"), n_files)
        write_side(folder, "items", _als_rows(model.itemFactors, item_bias, "item_idx"), n_files)
    finally:
        interactions.unpersist()
    if extras:
        np.savez(folder / "extras.npz", **extras)
    stored = SparkFactors(
        folder=folder,
        params=params,
        global_mean=global_mean,
        has_biases=has_biases,
        n_users=n_users,
        n_items=n_items,
    )
    stored.write_meta()
    return stored


def scale_confidence_frame(
    interactions: DataFrame, scheme: str, alpha: float, n_users: int, n_items: int
) -> tuple[DataFrame, ConfidenceScaler]:
    """``scale(x)`` of :mod:`~musicrec_assets.model.confidence` on interactions, in Spark.

    The formulas of :meth:`ConfidenceScaler.scale`, with bm25's statistics fitted on
    ``interactions`` as :func:`~musicrec_assets.model.confidence.fit_confidence` fits them on
    the matrix.

    Parameters
    ----------
    interactions : pyspark.sql.DataFrame
        ``user_idx, item_idx, value`` (play counts or ratings), the training entries.
    scheme : str
        One of ``confidence.SCHEMES``.
    alpha : float
        Confidence weight; only carried into the returned scaler.
    n_users, n_items : int
        The matrix shape: bm25's idf is ``log(n_users) − log1p(users of the item)``, its
        average length the total over ``n_users`` rows, empty ones included.

    Returns
    -------
    scaled : pyspark.sql.DataFrame
        ``user_idx, item_idx, value`` with ``value = scale(x)`` (double).
    scaler : ConfidenceScaler
        The scaler ``fit_confidence`` would return, its statistics (bm25's idf per item,
        collected on the driver) in ``scaler.extras()``.

    Raises
    ------
    ValueError
        On an unknown scheme.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if scheme == "bm25":
        return _bm25_frame(interactions, alpha, n_users, n_items)
    scaler = ConfidenceScaler.from_extras(scheme, alpha, {})  # raises on an unknown scheme
    value = F.col("value").cast("double")
    scaled = {
        "raw": value,
        "rating": value,
        "log1p": F.log1p(value),
        "binary": F.lit(1.0),
        # the mean of the stored entries of the row, as locally
        "centred": value - F.avg(value).over(Window.partitionBy("user_idx")),
    }[scheme]
    return interactions.select("user_idx", "item_idx", scaled.alias("value")), scaler


def _bm25_frame(
    interactions: DataFrame, alpha: float, n_users: int, n_items: int
) -> tuple[DataFrame, ConfidenceScaler]:
    from pyspark.sql import functions as F

    lengths = interactions.groupBy("user_idx").agg(F.sum("value").alias("length"))
    idf = interactions.groupBy("item_idx").agg(
        (F.lit(float(np.log(n_users))) - F.log1p(F.count(F.lit(1)))).alias("idf")
    )
    # per item: the model's extras have to hold it anyway, and the join below then uses the
    # very numbers a new user's fold-in will
    idf_rows = idf.collect()
    item_idf = np.full(n_items, np.log(n_users))  # log N − log1p(0): an item nobody played
    item_idf[np.array([row.item_idx for row in idf_rows], dtype=np.int64)] = [
        row.idf for row in idf_rows
    ]
    total = interactions.agg(F.sum("value")).first()[0]
    scaler = ConfidenceScaler(
        scheme="bm25", alpha=alpha, bm25_idf=item_idf, bm25_average_length=total / n_users
    )
    k1, b = scaler.bm25_k1, scaler.bm25_b
    plays = F.col("value")
    length_norm = (1.0 - b) + b * F.col("length") / scaler.bm25_average_length
    weight = plays * (k1 + 1.0) / (k1 * length_norm + plays) * F.col("idf")
    scaled = (
        interactions.join(lengths, "user_idx")
        .join(F.broadcast(idf), "item_idx")
        .select("user_idx", "item_idx", weight.alias("value"))
    )
    return scaled, scaler


def _fit_biased_explicit(
    spark: SparkSession, ratings: DataFrame, params: TrainingParams
) -> tuple[ALSModel, DataFrame, DataFrame, float]:
    """μ, biases and factors of the explicit objective with biases: rounds of bias sweeps and
    Spark's ALS on the residuals, the biases extrapolated once (see the module docstring).

    Returns the last ALS model, the ``(user_idx, bias)`` and ``(item_idx, bias)`` frames and μ.
    """
    from pyspark.sql import functions as F

    global_mean = float(ratings.agg(F.avg("value")).first()[0])
    offsets = ratings.select("user_idx", "item_idx", (F.col("value") - global_mean).alias("offset"))
    # r − μ and x_u·y_i of the current factors: none before the first ALS fit
    scored = offsets.withColumn("prediction", F.lit(0.0)).persist()
    user_history, item_history = [], []
    item_bias = model = None
    for round_index in range(_BIAS_ROUNDS):
        if model is not None:
            scored.unpersist()
            scored = model.transform(offsets).persist()
        for _ in range(_WARM_ROUND_SWEEPS if round_index else _FIRST_ROUND_SWEEPS):
            user_bias = bias_sweep(scored, "user_idx", item_bias, "item_idx", params)
            item_bias = bias_sweep(scored, "item_idx", user_bias, "user_idx", params)
        user_history.append(user_bias)
        item_history.append(item_bias)
        if round_index == _EXTRAPOLATED_ROUND:
            user_bias = _extrapolated(user_history[-3:], "user_idx")
            item_bias = _extrapolated(item_history[-3:], "item_idx")
        residuals = (
            scored.join(user_bias.withColumnRenamed("bias", "user_bias"), "user_idx")
            .join(item_bias.withColumnRenamed("bias", "item_bias"), "item_idx")
            .select(
                "user_idx",
                "item_idx",
                (F.col("offset") - F.col("user_bias") - F.col("item_bias")).alias("value"),
            )
        )
        model = _als(spark, params).fit(residuals)
    scored.unpersist()
    return model, user_bias, item_bias, global_mean


def bias_sweep(
    scored: DataFrame,
    key: str,
    other_bias: DataFrame | None,
    other_key: str,
    params: TrainingParams,
) -> DataFrame:
    """``(key, bias)``: each row's ``Σ (offset − prediction − b_other) / (n + penalty)`` over
    ``scored``'s rows (``offset`` = r − μ, ``prediction`` = x·y, 0 for a bias model), the bias
    that minimizes the objective with everything else fixed
    (:func:`~musicrec_assets.model.explicit_als.bias_penalty`)."""
    from pyspark.sql import functions as F

    if other_bias is None:
        joined, other = scored, F.lit(0.0)
    else:
        joined, other = scored.join(other_bias, other_key), F.col("bias")
    residual = F.col("offset") - F.col("prediction") - other
    count = F.count(F.lit(1))
    denominator = count + bias_penalty(params, count)
    bias = joined.groupBy(key).agg((F.sum(residual) / denominator).alias("bias"))
    # each sweep builds on the last: without cutting the plan, its size (and Spark's time
    # planning it) doubles with every sweep
    return bias.localCheckpoint(eager=True)


def _extrapolated(history: list[DataFrame], key: str) -> DataFrame:
    """``(key, bias)``: the limit of each row's biases of three successive rounds, taken as a
    geometric series (Aitken's Δ²): ``b₂ + Δ₂ ρ / (1 − ρ)`` with ``ρ = Δ₂ / Δ₁``.

    Only a row converging monotonically (0 ≤ ρ) is extrapolated; ρ is capped at 0.95 so
    that a row barely moving is not sent far off.
    """
    from pyspark.sql import functions as F

    first, second, third = (
        frame.withColumnRenamed("bias", name)
        for frame, name in zip(history, ("b0", "b1", "b2"), strict=True)
    )
    step, next_step = F.col("b1") - F.col("b0"), F.col("b2") - F.col("b1")
    ratio = F.when(F.abs(step) > 1e-12, next_step / step).otherwise(0.0)
    ratio = F.least(F.greatest(ratio, F.lit(0.0)), F.lit(_MAX_CONVERGENCE_RATIO))
    return (
        first.join(second, key)
        .join(third, key)
        .select(key, (F.col("b2") + next_step * ratio / (1.0 - ratio)).alias("bias"))
        .localCheckpoint(eager=True)
    )


def _als(spark: SparkSession, params: TrainingParams) -> ALS:
    from pyspark.ml.recommendation import ALS

    return ALS(
        rank=params.rank,
        regParam=params.regularization,
        maxIter=params.iterations,
        implicitPrefs=params.objective == "ranking",
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


def _als_rows(factors: DataFrame, bias: DataFrame | None, key: str) -> DataFrame:
    """One side's rows for :func:`~musicrec_assets.backends.spark.factors.write_side`: Spark's
    ``(id, features)`` factors with the side's biases (0 without)."""
    from pyspark.sql import functions as F

    side = factors.select(F.col("id").alias("idx"), F.col("features").alias("factors"))
    if bias is None:
        return side.withColumn("bias", F.lit(0.0))
    return side.join(bias.withColumnRenamed(key, "idx"), "idx", "left")


def fit_spark_als(
    spark: SparkSession,
    matrix: csr_matrix,
    params: TrainingParams,
    workdir: Path,
) -> FactorModel:
    """Factorize a users × items matrix with Spark MLlib's ALS (:func:`fit_spark_frame`).

    Parameters
    ----------
    spark : SparkSession
        E.g. from :func:`spark_session`.
    matrix : csr_matrix
        users × items, data = ratings (explicit) or play counts (implicit); stored entries are
        the observed interactions.
    params : TrainingParams
        As for :func:`fit_spark_frame`: ``weighted_regularization=True``, as that is the
        model Spark fits.
    workdir : Path
        Folder for the Parquet files exchanged with Spark (a temporary subfolder, removed on
        return); on a cluster it must be shared storage.

    Returns
    -------
    FactorModel
        float32 factors in row / column order, zero for users and items without interactions;
        for a rating model with ``use_biases`` μ and the biases, else no biases
        (global_mean 0); for a ranking model the confidence scaler's statistics in
        ``extras``, as :func:`~musicrec_assets.model.implicit_als.fit_implicit_als` stores them.
    """
    n_users, n_items = matrix.shape
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=workdir, prefix="spark-als-") as exchange:
        exchange = Path(exchange)
        interactions_path = exchange / "interactions.parquet"
        _write_interactions(csr_matrix(matrix), interactions_path)
        stored = fit_spark_frame(
            spark,
            spark.read.parquet(interactions_path.as_uri()),
            params,
            exchange / "model",
            n_users,
            n_items,
        )
        return stored.to_factor_model()


def _write_interactions(matrix: csr_matrix, path: Path) -> None:
    """(user_idx INTEGER, item_idx INTEGER, value FLOAT) Parquet.

    Spark's ALS needs integer ids and computes in float32, so narrower columns lose nothing.
    """
    rows, cols, data = to_triples(matrix)
    interactions = pa.table(
        {
            "user_idx": rows.astype(np.int32),
            "item_idx": cols.astype(np.int32),
            "value": data.astype(np.float32),
        }
    )
    pq.write_table(interactions, path)
