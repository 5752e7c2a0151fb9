"""A factor model kept in Parquet, for the Spark backend: executors read it from shared storage,
the driver never has to hold it whole.

Layout of a model folder (``folder`` must be storage every executor sees under the same path)::

    model.json        {"params": TrainingParams fields, "global_mean": μ, "has_biases": bool,
                       "n_users": …, "n_items": …}
    users/*.parquet   idx INT, factors ARRAY<FLOAT>, bias FLOAT   (bias 0 without biases)
    items/*.parquet   idx INT, factors ARRAY<FLOAT>, bias FLOAT
    extras.npz        the confidence scaler's per-item arrays (FactorModel.extras), if any

Rows a fit never saw may be missing: they read as zero factors and zero bias, as
:class:`~musicrec_assets.model.factors.FactorModel` stores them. Scores are the dot products of
:meth:`SparkFactors.vectors` of both sides: ``[x_u, 1, μ + b_u] · [y_i, b_i, 1]`` with biases,
``x_u · y_i`` without, exactly ``FactorModel.user_vectors() · item_vectors()``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from musicrec_assets.model.factors import FactorModel, TrainingParams, biased_vectors

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

Side = Literal["users", "items"]
_BATCH_ROWS = 65_536


@dataclass(frozen=True)
class SparkFactors:
    """A model folder in the layout above."""

    folder: Path
    params: TrainingParams
    global_mean: float
    has_biases: bool
    n_users: int
    n_items: int

    @classmethod
    def load(cls, folder: str | Path) -> SparkFactors:
        folder = Path(folder)
        meta = json.loads((folder / "model.json").read_text())
        return cls(
            folder=folder,
            params=TrainingParams(**meta["params"]),
            global_mean=float(meta["global_mean"]),
            has_biases=bool(meta["has_biases"]),
            n_users=int(meta["n_users"]),
            n_items=int(meta["n_items"]),
        )

    def write_meta(self) -> None:
        meta = {
            "params": asdict(self.params),
            "global_mean": self.global_mean,
            "has_biases": self.has_biases,
            "n_users": self.n_users,
            "n_items": self.n_items,
        }
        (self.folder / "model.json").write_text(json.dumps(meta, indent=2))

    def count(self, side: Side) -> int:
        return self.n_users if side == "users" else self.n_items

    def batches(self, side: Side, batch_rows: int = _BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        """The side's (idx, factors, bias) rows, a bounded batch at a time."""
        dataset = pq.ParquetDataset(self.folder / side)
        for fragment in dataset.fragments:
            yield from fragment.to_batches(batch_size=batch_rows)

    def arrays(self, side: Side) -> tuple[np.ndarray, np.ndarray]:
        """The side's (factors (n, rank) float32, bias (n,) float32) by index; rows not stored
        are zero. Holds the whole side: for executors' blocks and the model files."""
        n, rank = self.count(side), self.params.rank
        factors = np.zeros((n, rank), dtype=np.float32)
        bias = np.zeros(n, dtype=np.float32)
        for batch in self.batches(side):
            idx = batch.column("idx").to_numpy()
            if rank:
                flat = batch.column("factors").flatten().to_numpy(zero_copy_only=False)
                factors[idx] = flat.reshape(len(idx), rank)
            bias[idx] = batch.column("bias").to_numpy(zero_copy_only=False)
        return factors, bias

    def vectors(self, side: Side) -> np.ndarray:
        """The side's scoring vectors by index, biases folded in (see the module docstring)."""
        factors, bias = self.arrays(side)
        if not self.has_biases:
            return factors
        return biased_vectors(factors, bias, self.global_mean, side)

    def extras(self) -> dict[str, np.ndarray]:
        path = self.folder / "extras.npz"
        if not path.exists():
            return {}
        with np.load(path, allow_pickle=False) as arrays:
            return {name: arrays[name] for name in arrays.files}

    def to_factor_model(self) -> FactorModel:
        """The same model as a :class:`FactorModel` by index (no ids), in memory."""
        user_factors, user_bias = self.arrays("users")
        item_factors, item_bias = self.arrays("items")
        return FactorModel(
            params=self.params,
            user_factors=user_factors,
            item_factors=item_factors,
            global_mean=self.global_mean if self.has_biases else 0.0,
            user_bias=user_bias if self.has_biases else None,
            item_bias=item_bias if self.has_biases else None,
            extras=self.extras(),
        )


def write_factor_model(model: FactorModel, folder: str | Path) -> SparkFactors:
    """Write an in-memory model (e.g. a champion from MLflow, a numpy baseline) in the layout
    above, so Spark can score it; returns it as :class:`SparkFactors`."""
    folder = Path(folder)
    for side, factors, bias in (
        ("users", model.user_factors, model.user_bias),
        ("items", model.item_factors, model.item_bias),
    ):
        (folder / side).mkdir(parents=True, exist_ok=True)
        n, rank = factors.shape
        bias = np.zeros(n, dtype=np.float32) if bias is None else bias.astype(np.float32)
        with pq.ParquetWriter(folder / side / "part-0.parquet", _SCHEMA) as writer:
            for start in range(0, n, _BATCH_ROWS):
                stop = min(start + _BATCH_ROWS, n)
                flat = pa.array(np.ascontiguousarray(factors[start:stop], np.float32).ravel())
                writer.write_table(
                    pa.table(
                        {
                            "idx": pa.array(np.arange(start, stop, dtype=np.int32)),
                            "factors": pa.ListArray.from_arrays(
                                # rank 0 (a bias model) gives empty lists, not a zero step
                                pa.array(np.arange(stop - start + 1, dtype=np.int32) * rank),
                                flat,
                            ),
                            "bias": pa.array(bias[start:stop]),
                        },
                        schema=_SCHEMA,
                    )
                )
    if model.extras:
        np.savez(folder / "extras.npz", **model.extras)
    stored = SparkFactors(
        folder=folder,
        params=model.params,
        global_mean=float(model.global_mean),
        has_biases=model.has_biases,
        n_users=model.n_users,
        n_items=model.n_items,
    )
    stored.write_meta()
    return stored


def write_side(folder: Path, side: Side, rows: DataFrame, n_files: int | None = None) -> None:
    """Write one side of the model in ``folder`` from ``rows`` (``idx``, ``factors`` an array,
    ``bias``; a NULL bias is 0) in the layout above, as ``n_files`` Parquet files (Spark's
    partitions where None)."""
    from pyspark.sql import functions as F

    rows = rows.select(
        F.col("idx").cast("int"),
        F.col("factors").cast("array<float>"),
        F.coalesce(F.col("bias"), F.lit(0.0)).cast("float").alias("bias"),
    )
    if n_files is not None:
        rows = rows.coalesce(n_files)
    rows.write.mode("overwrite").parquet(Path(folder, side).absolute().as_uri())


_SCHEMA = pa.schema(
    [("idx", pa.int32()), ("factors", pa.list_(pa.float32())), ("bias", pa.float32())]
)
