"""Where the training and serving work runs: :func:`open_backend` is the one dispatch.

``local`` (:mod:`.local`) works in this process; ``spark`` (:mod:`.spark`) on a Spark
session, imported only when chosen, so pyspark is needed only there.
"""

from musicrec_assets.backends.base import Backend, TrainingBackend


def open_backend(kind: Backend, spark_workspace) -> TrainingBackend:
    """The backend ``kind`` names. ``spark_workspace`` is a callable returning a context of
    ``(spark session, step folder)``, called only by the Spark backend, each time a step
    needs Spark."""
    if kind == Backend.spark:
        from musicrec_assets.backends.spark.backend import SparkBackend

        return SparkBackend(spark_workspace)
    from musicrec_assets.backends.local import LocalBackend

    return LocalBackend()
