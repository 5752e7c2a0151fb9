"""A trained factor model: the one shape every backend (explicit ALS, `implicit`, Spark) returns.

Predicted score of user ``u`` for artist ``i``::

    rating model:   r̂(u, i) = μ + b_u + b_i + x_u · y_i
    ranking model:  p̂(u, i) = x_u · y_i

``user_vectors()`` and ``item_vectors()`` fold the biases into two extra columns
(``[x_u, 1, μ + b_u]`` and ``[y_i, b_i, 1]``) so that every score is one dot product:
the serving code, the SQL tables and the MLflow model need no special case for biases.

Saved as one ``.npz`` (``allow_pickle=False``) plus a JSON sidecar, never as a pickle.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix

# what a home's data holds: ratings ("explicit") or play counts ("implicit")
Feedback = Literal["explicit", "implicit"]
# what a model fits: the ratings themselves ("rating") or preferences weighted by confidence,
# to order a list ("ranking")
Objective = Literal["rating", "ranking"]
# called after every training iteration as callback(iteration, metrics), e.g. the training loss
IterationCallback = Callable[[int, dict[str, float]], None]


# the TrainingParams fields that only ranking models (implicit ALS, on play counts or ratings)
# use
RANKING_ONLY = ("alpha", "confidence")

# params saved before the objective had its own name (a model's JSON sidecar, a tuning_trials
# row) call it ``feedback``, with the values of the data kind it coincided with
_OBJECTIVE_OF_OLD_FEEDBACK: dict[str, Objective] = {"explicit": "rating", "implicit": "ranking"}


def params_fields(stored: dict) -> dict:
    """The fields of params as stored, under today's names: a ``feedback`` key of an older
    version becomes ``objective`` ("explicit" a rating model, "implicit" a ranking model)."""
    if "feedback" not in stored:
        return stored
    fields = {name: value for name, value in stored.items() if name != "feedback"}
    return {**fields, "objective": _OBJECTIVE_OF_OLD_FEEDBACK[stored["feedback"]]}


@dataclass(frozen=True)
class TrainingParams:
    """Hyperparameters a model was trained with; fold-in needs the same ones.

    ``objective``: "rating" fits the ratings themselves (a rating model), "ranking" fits
    preferences weighted by confidence (a ranking model), on play counts or, with a rating
    confidence scheme, on ratings.
    """

    objective: Objective
    rank: int
    regularization: float
    iterations: int = 15
    # rating: scale λ by each row's rating count (ALS-WR, as Spark MLlib does)
    weighted_regularization: bool = True
    use_biases: bool = True
    # rating with biases: the biases' own plain λ (b = Σ residual / (n + λ_b), what the bias
    # baseline fits). None shares the factors' λ and its weighting, as versions before it did:
    # ALS-WR's λ·n shrinks every bias by the same 1/(1 + λ) whatever its support, which cost
    # the rating model its lead over a bias model on data it was not tuned for
    bias_regularization: float | None = None
    # ranking: confidence = 1 + alpha * scale(values), scale in raw | log1p | bm25 for plays,
    # binary | rating | centred for ratings (model/confidence.py)
    alpha: float = 1.0
    confidence: str = "log1p"
    seed: int = 42


def biased_vectors(
    factors: np.ndarray, bias: np.ndarray, global_mean: float, side: str
) -> np.ndarray:
    """One side's factors with the biases folded in as two more columns, so that a user's row
    · an item's row = μ + b_u + b_i + p_u·q_i: users ``[p_u, 1, μ + b_u]``, items
    ``[q_i, b_i, 1]`` (``side`` "users" or "items")."""
    ones = np.ones((len(factors), 1), dtype=factors.dtype)
    if side == "users":
        return np.hstack([factors, ones, (global_mean + bias).astype(factors.dtype)[:, None]])
    return np.hstack([factors, bias.astype(factors.dtype)[:, None], ones])


@dataclass(frozen=True)
class FactorModel:
    """Factors (and biases) by row and column index, as a fitter returns them; the caller
    attaches the ids (:meth:`with_ids`) before the model is saved, served or reindexed."""

    params: TrainingParams
    user_factors: np.ndarray  # (n_users, rank) float32
    item_factors: np.ndarray  # (n_items, rank) float32
    global_mean: float = 0.0
    user_bias: np.ndarray | None = None  # (n_users,) rating models only
    item_bias: np.ndarray | None = None  # (n_items,) rating models only
    # extra per-item arrays a confidence scheme needs to treat a new user like a trained one
    # (e.g. bm25's idf); keys are array names in the .npz
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    user_ids: np.ndarray | None = None  # (n_users,) str, row index -> user id
    item_ids: np.ndarray | None = None  # (n_items,) str, column index -> artist id

    @property
    def has_biases(self) -> bool:
        return self.user_bias is not None and self.item_bias is not None

    @property
    def n_users(self) -> int:
        return len(self.user_factors)

    @property
    def n_items(self) -> int:
        return len(self.item_factors)

    def with_ids(self, user_ids: np.ndarray, item_ids: np.ndarray) -> FactorModel:
        """This model with its rows and columns named: ``user_ids[row]``, ``item_ids[column]``."""
        user_ids, item_ids = np.asarray(user_ids), np.asarray(item_ids)
        if (len(user_ids), len(item_ids)) != (self.n_users, self.n_items):
            raise ValueError(
                f"{len(user_ids)} user and {len(item_ids)} item ids for a model of "
                f"{self.n_users} users and {self.n_items} items"
            )
        return replace(self, user_ids=user_ids, item_ids=item_ids)

    def _require_ids(self) -> None:
        if self.user_ids is None or self.item_ids is None:
            raise ValueError("the model has no ids: attach them with with_ids() first")

    def user_vectors(self) -> np.ndarray:
        """User embeddings whose dot product with ``item_vectors()`` is the predicted score."""
        if not self.has_biases:
            return self.user_factors
        return biased_vectors(self.user_factors, self.user_bias, self.global_mean, "users")

    def item_vectors(self) -> np.ndarray:
        if not self.has_biases:
            return self.item_factors
        return biased_vectors(self.item_factors, self.item_bias, self.global_mean, "items")

    def predict(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        """Scores of (user, item) index pairs."""
        user_index, item_index = np.asarray(user_index), np.asarray(item_index)
        scores = np.einsum(
            "ij,ij->i",
            self.user_factors[user_index].astype(np.float64),
            self.item_factors[item_index].astype(np.float64),
        )
        if self.has_biases:
            scores += self.global_mean + self.user_bias[user_index] + self.item_bias[item_index]
        return scores

    def reindexed(self, user_ids: np.ndarray, item_ids: np.ndarray) -> FactorModel:
        """This model on other id maps: ids it never saw get zero factors and biases (it
        predicts what it knows, e.g. the global mean), to score an older model on newer data."""
        self._require_ids()

        def reorder(values: np.ndarray, known: np.ndarray, wanted: np.ndarray) -> np.ndarray:
            position = pd.Index(known).get_indexer(wanted)
            out = np.zeros((len(wanted), *values.shape[1:]), dtype=values.dtype)
            out[position >= 0] = values[position[position >= 0]]
            return out

        def per_item(values: np.ndarray) -> np.ndarray:
            is_per_item = values.shape[:1] == self.item_ids.shape
            return reorder(values, self.item_ids, item_ids) if is_per_item else values

        return replace(
            self,
            user_ids=np.asarray(user_ids),
            item_ids=np.asarray(item_ids),
            user_factors=reorder(self.user_factors, self.user_ids, user_ids),
            item_factors=reorder(self.item_factors, self.item_ids, item_ids),
            user_bias=None
            if self.user_bias is None
            else reorder(self.user_bias, self.user_ids, user_ids),
            item_bias=None
            if self.item_bias is None
            else reorder(self.item_bias, self.item_ids, item_ids),
            extras={name: per_item(values) for name, values in self.extras.items()},
        )

    def save(self, path: str | Path) -> Path:
        """Write ``<path>.npz`` and ``<path>.json``; returns the .npz path."""
        self._require_ids()
        path = Path(path)
        arrays = {
            "user_ids": self.user_ids.astype(str),
            "item_ids": self.item_ids.astype(str),
            "user_factors": self.user_factors,
            "item_factors": self.item_factors,
        }
        if self.has_biases:
            arrays["user_bias"] = self.user_bias
            arrays["item_bias"] = self.item_bias
        arrays.update({f"extra_{name}": values for name, values in self.extras.items()})
        npz_path = path.with_suffix(".npz")
        np.savez(npz_path, **arrays)
        meta = {"params": asdict(self.params), "global_mean": float(self.global_mean)}
        path.with_suffix(".json").write_text(json.dumps(meta, indent=2))
        return npz_path

    @classmethod
    def load(cls, path: str | Path) -> FactorModel:
        path = Path(path)
        meta = json.loads(path.with_suffix(".json").read_text())
        with np.load(path.with_suffix(".npz"), allow_pickle=False) as arrays:
            data = {name: arrays[name] for name in arrays.files}
        return cls(
            params=TrainingParams(**params_fields(meta["params"])),
            user_ids=data["user_ids"],
            item_ids=data["item_ids"],
            user_factors=data["user_factors"],
            item_factors=data["item_factors"],
            global_mean=meta["global_mean"],
            user_bias=data.get("user_bias"),
            item_bias=data.get("item_bias"),
            extras={k[len("extra_") :]: v for k, v in data.items() if k.startswith("extra_")},
        )


def score_spread(user_vectors: np.ndarray, item_vectors: np.ndarray) -> np.ndarray:
    """Each user's standard deviation of their scores ``u · v`` over every item, without
    scoring every item: ``√(uᵀ Cov(V) u)``; float64, at least 1e-12."""
    items = np.asarray(item_vectors, dtype=np.float64)
    users = np.asarray(user_vectors, dtype=np.float64)
    mean = items.mean(axis=0) if len(items) else np.zeros(items.shape[1])
    covariance = items.T @ items / max(len(items), 1) - np.outer(mean, mean)
    variance = np.einsum("ij,jk,ik->i", users, covariance, users)
    return np.sqrt(np.maximum(variance, 1e-24))


def spread_scaled(user_vectors: np.ndarray, item_vectors: np.ndarray) -> np.ndarray:
    """``user_vectors`` (float32) each divided by the user's :func:`score_spread` over
    ``item_vectors``: users ranked for an artist by these rank by how far it stands out among
    their own options, not by how large their scores are. A user's own order is unchanged."""
    spread = score_spread(user_vectors, item_vectors)
    return (np.asarray(user_vectors, dtype=np.float64) / spread[:, None]).astype(np.float32)


def blended_vectors(
    ranking_users: np.ndarray,
    ranking_items: np.ndarray,
    rating_users: np.ndarray,
    rating_items: np.ndarray,
    weight: float,
) -> tuple[np.ndarray, np.ndarray]:
    """User and item vectors whose dot product orders a listener's list by
    ``z(u, i) + weight · r̂(u, i)``: the ranking score standardised over the user's items
    (:func:`score_spread`; its per-user mean shifts nothing in a user's order and is left out)
    plus ``weight`` times the predicted rating. One dot product, so the top-N routines, the
    tables and fold-in serve it like any model."""
    spread = score_spread(ranking_users, ranking_items).astype(np.float32)
    users = np.hstack([ranking_users / spread[:, None], weight * rating_users])
    items = np.hstack([ranking_items, rating_items])
    return users.astype(np.float32), items.astype(np.float32)


@dataclass(frozen=True)
class ModelPair:
    """What one trained version carries: ``ranking`` orders the recommendation lists;
    ``rating``, for ratings only, predicts the rating a user would give (None for play counts,
    where the ranking model is all there is). With ``blend_weight`` w > 0 the lists are
    ordered by the ranking score standardised per listener plus w × the predicted rating
    (:meth:`list_model`), so that a list does not hold what its own rating model expects the
    listener to dislike; w is chosen by cross-validation (``evaluation/blend.py``)."""

    ranking: FactorModel
    rating: FactorModel | None = None
    blend_weight: float = 0.0

    def with_ids(self, user_ids: np.ndarray, item_ids: np.ndarray) -> ModelPair:
        """Both models named with the same ids (:meth:`FactorModel.with_ids`)."""
        return ModelPair(
            ranking=self.ranking.with_ids(user_ids, item_ids),
            rating=None if self.rating is None else self.rating.with_ids(user_ids, item_ids),
            blend_weight=self.blend_weight,
        )

    def list_model(self) -> FactorModel:
        """What orders the lists users receive: the ranking model, or where there is a rating
        model and a blend weight, the blend of the two as one model (:func:`blended_vectors`)."""
        if self.rating is None or self.blend_weight <= 0:
            return self.ranking
        users, items = blended_vectors(
            self.ranking.user_vectors(),
            self.ranking.item_vectors(),
            self.rating.user_vectors(),
            self.rating.item_vectors(),
            self.blend_weight,
        )
        return replace(
            self.ranking,
            # the width of its vectors, as every reader of a factor model takes its rank to be
            params=replace(self.ranking.params, rank=users.shape[1]),
            user_factors=users,
            item_factors=items,
            global_mean=0.0,
            user_bias=None,
            item_bias=None,
            extras={},
        )

    @property
    def feedback(self) -> Feedback:
        """What the pair was trained on: "explicit" (ratings) when it has a rating model."""
        return "implicit" if self.rating is None else "explicit"

    def models(self) -> dict[str, FactorModel]:
        """The models by role, "ranking" then "rating" where there is one."""
        return {"ranking": self.ranking} | ({} if self.rating is None else {"rating": self.rating})

    def published_models(self) -> dict[str, FactorModel]:
        """:meth:`models` and, where the lists blend the two, "list": the model whose score
        orders them (:meth:`list_model`), so that every published score is one model's."""
        listed = self.list_model()
        return self.models() | ({} if listed is self.ranking else {"list": listed})

    def save(self, folder: str | Path, name: str) -> list[Path]:
        """Write the ranking model as ``<folder>/<name>`` and the rating model, if any, as
        ``<folder>/rating_<name>`` (:meth:`FactorModel.save`); returns every file written."""
        written = []
        for role, model in self.models().items():
            npz = model.save(Path(folder) / _file_name(role, name))
            written += [npz, npz.with_suffix(".json")]
        if self.blend_weight > 0:
            blend = Path(folder) / f"{_file_name('list', name)}.json"
            blend.write_text(json.dumps({"blend_weight": self.blend_weight}))
            written.append(blend)
        return written

    @classmethod
    def load(cls, folder: str | Path, name: str) -> ModelPair:
        """The pair :meth:`save` wrote. A folder of a version logged before the pair holds one
        model: it ranks, and it predicts ratings too when it was fitted on them."""
        ranking = FactorModel.load(Path(folder) / name)
        rating_path = Path(folder) / _file_name("rating", name)
        if rating_path.with_suffix(".npz").exists():
            blend = Path(folder) / f"{_file_name('list', name)}.json"
            weight = json.loads(blend.read_text())["blend_weight"] if blend.exists() else 0.0
            return cls(ranking, FactorModel.load(rating_path), weight)
        return cls(ranking, ranking if ranking.params.objective == "rating" else None)


def _file_name(role: str, name: str) -> str:
    # the ranking model keeps the single model's old name, which older pyfunc code loads
    return name if role == "ranking" else f"{role}_{name}"


class Fitter(Protocol):
    """What every backend's fit looks like: a users × items matrix (ratings or plays) and
    the params in, a :class:`FactorModel` by index out (no ids), as ``implicit``'s
    ``fit(user_items)``. A backend that reports no per-iteration metrics ignores ``callback``.
    """

    def __call__(
        self, matrix: csr_matrix, params: TrainingParams, callback: IterationCallback | None = None
    ) -> FactorModel: ...
