"""Tags mapped into the factor space: factors for an artist nobody has rated yet.

"Attribute-to-feature mapping" (Gantner et al., ICDM 2010): a linear map from an artist's
tag vector to its latent factors, fitted on the artists that have both ratings (so factors)
and tags, then applied to artists that have tags alone. Here:

- **Tag vectors**: TF-IDF, ``tf = log1p(weight)`` (a weight counts the listeners who applied
  the tag, so the hundredth listener adds less than the first), ``idf = log((1 + N) / (1 +
  df)) + 1`` over the N tagged artists given, each row scaled to unit length, so an artist
  with many tags does not get a longer factor vector than one with few. Tags on fewer than
  ``min_artists`` artists are dropped (a typo or a private label says nothing about anyone
  else).
- **Ridge regression** with an unpenalized intercept (the mean factor row: an artist whose
  tags say nothing gets the average artist), ``W = (X̃ᵀX̃ + λI)⁻¹ X̃ᵀỸ`` on centred ``X̃, Ỹ``.
  One eigendecomposition of the tags' Gram matrix gives the solution for every λ, and for
  every model's factors (:func:`fit_tag_mappings`).
- **λ by cross-validation over artists**: exact leave-one-artist-out residuals (ridge's
  ``e_i / (1 − h_ii)``), measured as the squared error of the *scores* they would give:
  ``Σ_i r_iᵀ G r_i`` with ``G = UᵀU / n_users`` the user factors' second moment, so a
  direction of the factor space counts as much as the users' scores depend on it. The grid
  spans 10⁻⁴–10⁴ × the Gram's mean eigenvalue; a best λ on the grid's edge is reported.

Why not the alternatives: a LightFM-style hybrid or collective MF would retrain the ranking
model itself with tag features, changing the champion every tagged dataset; the mapping
leaves the champion untouched, can be fitted after any training in seconds, and can be
checked on its own (the cold-artist protocol, :mod:`musicrec_assets.evaluation.cold_artists`).

numpy/scipy only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix, diags

# λ grid, relative to the mean eigenvalue of the centred tags' Gram matrix
RELATIVE_LAMBDAS = np.logspace(-4, 4, 33)
ROW_CHUNK = 4096
# the files (.npz and .json) of a model version's artists placed by their tags
TAG_FACTORS_FILE = "tag_factors"


@dataclass(frozen=True)
class TagVocabulary:
    """The kept tags (columns of a tag matrix) and their idf."""

    columns: np.ndarray  # (d,) int: kept columns of the raw tag matrix
    idf: np.ndarray  # (d,) float64

    @property
    def size(self) -> int:
        return len(self.columns)


def fit_vocabulary(tags: csr_matrix, min_artists: int = 2) -> TagVocabulary:
    """The tags of ``tags`` (artists × tags, raw weights, all artists known to carry tags)
    that at least ``min_artists`` artists carry, with their idf over those artists."""
    tags = csr_matrix(tags)
    present = tags.copy()
    present.data = (present.data > 0).astype(np.float64)
    present.eliminate_zeros()
    df = np.asarray(present.sum(axis=0)).ravel()
    n_tagged = int((present.getnnz(axis=1) > 0).sum())
    columns = np.flatnonzero(df >= max(min_artists, 1))
    idf = np.log((1.0 + n_tagged) / (1.0 + df[columns])) + 1.0
    return TagVocabulary(columns=columns, idf=idf)


def tag_vectors(tags: csr_matrix, vocabulary: TagVocabulary) -> csr_matrix:
    """Rows of ``tags`` (raw weights) as unit-length TF-IDF vectors over ``vocabulary``; an
    artist with none of its tags has a zero row."""
    kept = csr_matrix(tags)[:, vocabulary.columns].astype(np.float64)
    kept.data = np.log1p(np.maximum(kept.data, 0.0))
    weighted = csr_matrix(kept @ diags(vocabulary.idf))
    norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
    inverse = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return csr_matrix(diags(inverse) @ weighted)


@dataclass(frozen=True)
class TagMapping:
    """Factors from tag vectors: ``factors = intercept + X @ weights``."""

    vocabulary: TagVocabulary
    weights: np.ndarray  # (d, k)
    intercept: np.ndarray  # (k,)
    regularization: float
    # the CV curve: λ tried and the leave-one-out score error of each (lower is better)
    lambdas: np.ndarray
    cv_errors: np.ndarray
    n_artists: int  # the artists it was fitted on
    on_edge: bool  # the best λ is the grid's first or last

    def factors(self, tags: csr_matrix) -> np.ndarray:
        """Mapped factors (float32) of the artists of ``tags`` (rows, raw weights, the
        columns of the matrix the vocabulary was fitted on)."""
        x = tag_vectors(tags, self.vocabulary)
        return (self.intercept + x @ self.weights).astype(np.float32)

    def has_tags(self, tags: csr_matrix) -> np.ndarray:
        """Whether each row carries at least one tag of the vocabulary."""
        return csr_matrix(tags)[:, self.vocabulary.columns].getnnz(axis=1) > 0


def fit_tag_mapping(
    tags: csr_matrix,
    factors: np.ndarray,
    fit_rows: np.ndarray,
    user_factors: np.ndarray | None = None,
    min_artists: int = 2,
    relative_lambdas: np.ndarray = RELATIVE_LAMBDAS,
) -> TagMapping:
    """Ridge from tag vectors to factors, λ chosen by leave-one-artist-out CV.

    Parameters
    ----------
    tags : csr_matrix
        artists × tags raw weights, every artist known (the vocabulary and idf come from
        all that carry tags, those with factors or not: tags alone leak no interactions).
    factors : ndarray (n_artists, k)
        The artist factors to learn; only the ``fit_rows`` are read.
    fit_rows : ndarray of int
        The artists to fit on: they have factors (ratings) and tags.
    user_factors : ndarray (n_users, k), optional
        The users' factors: the CV error is that of the scores ``U · v`` they give; the
        plain factor error without.
    """
    targets = {"factors": (factors, user_factors)}
    return fit_tag_mappings(tags, targets, fit_rows, min_artists, relative_lambdas)["factors"]


def fit_tag_mappings(
    tags: csr_matrix,
    targets: dict[str, tuple[np.ndarray, np.ndarray | None]],
    fit_rows: np.ndarray,
    min_artists: int = 2,
    relative_lambdas: np.ndarray = RELATIVE_LAMBDAS,
) -> dict[str, TagMapping]:
    """:func:`fit_tag_mapping` of each of ``targets`` (name → (factors, user_factors)), from
    the same tags and artists: the tags' Gram matrix is decomposed once for all (at thousands
    of tags its eigendecomposition is most of a fit's time)."""
    vocabulary = fit_vocabulary(tags, min_artists)
    x = tag_vectors(csr_matrix(tags)[fit_rows], vocabulary)
    keep = x.getnnz(axis=1) > 0
    x = x[keep]
    rows = np.asarray(fit_rows)[keep]
    n, d = x.shape[0], vocabulary.size
    if n < 3 or d == 0:
        raise ValueError(
            f"a tag mapping needs at least 3 artists with factors and kept tags, and one tag: "
            f"got {n} artists and {d} tags"
        )
    x_mean = np.asarray(x.mean(axis=0)).ravel()
    gram = (x.T @ x).toarray() - n * np.outer(x_mean, x_mean)
    eigenvalues, vectors = np.linalg.eigh(gram)
    eigenvalues = np.maximum(eigenvalues, 0.0)
    scale = max(float(eigenvalues.mean()), 1e-12)
    lambdas = np.asarray(relative_lambdas, dtype=np.float64) * scale
    mappings = {}
    for name, (factors, user_factors) in targets.items():
        y = np.asarray(factors, dtype=np.float64)[rows]
        if user_factors is None:
            metric = np.eye(y.shape[1])
        else:
            u = np.asarray(user_factors, dtype=np.float64)
            metric = u.T @ u / max(len(u), 1)
        y_mean = y.mean(axis=0)
        y_centred = y - y_mean
        # (d, k): Vᵀ X̃ᵀ Ỹ (Ỹ's columns sum to 0, which cancels the centring of X)
        projected_targets = vectors.T @ (x.T @ y_centred)
        errors = _leave_one_out_errors(
            x, x_mean, vectors, eigenvalues, projected_targets, y_centred, lambdas, metric
        )
        best = int(np.argmin(errors))
        lam = float(lambdas[best])
        weights = vectors @ (projected_targets / (eigenvalues + lam)[:, None])
        mappings[name] = TagMapping(
            vocabulary=vocabulary,
            weights=weights,
            intercept=y_mean - x_mean @ weights,
            regularization=lam,
            lambdas=lambdas,
            cv_errors=errors,
            n_artists=n,
            on_edge=best in (0, len(lambdas) - 1),
        )
    return mappings


def _leave_one_out_errors(
    x: csr_matrix,
    x_mean: np.ndarray,
    vectors: np.ndarray,
    eigenvalues: np.ndarray,
    projected_targets: np.ndarray,
    y_centred: np.ndarray,
    lambdas: np.ndarray,
    metric: np.ndarray,
) -> np.ndarray:
    """For each λ, the mean over artists of ``r_iᵀ G r_i``, r_i the exact leave-one-out
    residual of ridge with intercept: ``(y_i − ŷ_i) / (1 − h_ii)``, ``h_ii = 1/n +
    x̃_iᵀ (X̃ᵀX̃ + λI)⁻¹ x̃_i``. In the eigenbasis (``z_i = Vᵀx̃_i``) both are sums over the
    eigenvalues, so the artists are rotated once and every λ costs O(n·d·k)."""
    n = x.shape[0]
    totals = np.zeros(len(lambdas))
    for start in range(0, n, ROW_CHUNK):
        rows = slice(start, min(start + ROW_CHUNK, n))
        rotated = (x[rows].toarray() - x_mean) @ vectors
        squared = rotated**2
        for at, lam in enumerate(lambdas):
            inverse = 1.0 / (eigenvalues + lam)
            leverage = 1.0 / n + squared @ inverse
            fitted = rotated @ (projected_targets * inverse[:, None])
            residual = (y_centred[rows] - fitted) / np.maximum(1.0 - leverage, 1e-9)[:, None]
            totals[at] += float(np.einsum("ij,jk,ik->", residual, metric, residual))
    return totals / n


@dataclass(frozen=True)
class TagFactors:
    """Factors from tags for artists nobody has rated, and the gate they passed or not
    (:func:`musicrec_assets.evaluation.cold_artists.tags_to_factors`); saved beside the model
    version that placed them."""

    passed: bool
    reason: str  # why they are published or withheld, in words
    margins: dict[str, float]  # the gate's (``cold_artists.gate_margins``); empty when not run
    scores: dict[str, dict[str, dict[str, float]]]  # the protocol's, by task and method
    rows: np.ndarray  # the new artists (rows of ``new_tags``) given factors
    vectors: dict[str, np.ndarray]  # by role: their vectors (rows × the role's width)
    regularization: dict[str, float]  # by role: the mapping's λ
    # whether their audiences rank users by their scores in units of each user's spread
    # (factors.spread_scaled): the protocol's choice, by its (a) NDCG@10
    audience_by_spread: bool = False

    def save(self, folder: str | Path, ids: np.ndarray) -> list[Path]:
        """Write ``<folder>/tag_factors.npz`` (the placed artists' ``ids``, one per row, and
        each role's vectors; no pickle) and ``.json`` (the verdict); returns both paths, which
        travel with the model version that placed them."""
        path = Path(folder) / TAG_FACTORS_FILE
        arrays = {f"vectors_{role}": values for role, values in self.vectors.items()}
        np.savez(path.with_suffix(".npz"), artist_ids=np.asarray(ids).astype(str), **arrays)
        verdict = {
            "passed": self.passed,
            "reason": self.reason,
            "margins": self.margins,
            "scores": self.scores,
            "regularization": self.regularization,
            "audience_by_spread": self.audience_by_spread,
        }
        path.with_suffix(".json").write_text(json.dumps(verdict, indent=2))
        return [path.with_suffix(".npz"), path.with_suffix(".json")]

    @classmethod
    def load(cls, folder: str | Path) -> tuple[np.ndarray, TagFactors] | None:
        """The ids and factors :meth:`save` wrote in ``folder``; None where it wrote none (no
        artist had tags, or a version from before artists were placed)."""
        path = Path(folder) / TAG_FACTORS_FILE
        if not path.with_suffix(".json").is_file():
            return None
        verdict = json.loads(path.with_suffix(".json").read_text())
        with np.load(path.with_suffix(".npz"), allow_pickle=False) as arrays:
            ids = arrays["artist_ids"]
            vectors = {
                name.removeprefix("vectors_"): arrays[name]
                for name in arrays.files
                if name.startswith("vectors_")
            }
        return ids, cls(rows=np.arange(len(ids)), vectors=vectors, **verdict)
