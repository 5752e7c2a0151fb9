"""Confidence for implicit-feedback ALS: how sure are we that a user who played (or rated) an
artist likes it.

Following Hu, Koren & Volinsky (2008), an observed entry gets preference 1 and confidence

    c_ui = 1 + α · scale(x_ui)

and an unobserved entry preference 0 and confidence 1. For play counts ``x`` = plays and
``scale`` is one of

    raw     plays
    log1p   log(1 + plays)
    bm25    plays · (K1 + 1) / (K1 · ((1 − B) + B · len_u / avg_len) + plays) · idf_i
            with len_u = Σ_i plays_ui, avg_len its mean over the training users and
            idf_i = log(N_users) − log(1 + n_i), n_i = number of training users of item i

For explicit ratings (the ranking model of rated data, benfred/implicit#90) ``x`` = rating and

    binary   1                    (rated = liked, α weighs observed against unobserved)
    rating   rating
    centred  rating − mean_u      mean_u the user's mean rating, over the row being scaled

A negative ``scale`` (centred, a rating below the user's mean) is negative feedback: preference
0 with confidence ``1 + α·|scale|``, which the matrix carries as the negative value
``−(1 + α·|scale|)``, the convention of ``implicit``'s ALS (a negative entry is preference 0
with confidence |value|). Spark's implicit ALS reads the sign of ``scale`` the same way, except
that it counts a scale of exactly 0 (a rating at the mean) as preference 0.

bm25 is ``implicit.nearest_neighbours.bm25_weight`` applied to the users × items matrix, with
the fit (idf, average length) split from the transform so a new user's row is scaled with the
statistics of the training data. Those statistics travel in ``FactorModel.extras``; the rating
schemes need none (centred's mean is the row's own).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix

from musicrec_assets.model.sparse import row_of_entry

PLAY_SCHEMES = ("raw", "log1p", "bm25")
RATING_SCHEMES = ("binary", "rating", "centred")
SCHEMES = PLAY_SCHEMES + RATING_SCHEMES
# the schemes that scale an entry by its listener's whole row: bm25 by their total plays,
# centred by their mean rating
PER_LISTENER_SCHEMES = ("bm25", "centred")


@dataclass(frozen=True)
class ConfidenceScaler:
    """Turns play counts or ratings into the confidence matrix implicit's ALS reads.

    Attributes
    ----------
    scheme : str
        One of ``SCHEMES``.
    alpha : float
        Weight of the scaled plays in ``c = 1 + alpha * scale(plays)``.
    bm25_idf : ndarray or None
        (n_items,) idf of each item; bm25 only.
    bm25_average_length : float
        Mean total plays per training user; bm25 only.
    bm25_k1, bm25_b : float
        BM25 saturation and length-normalisation constants.
    """

    scheme: str
    alpha: float
    bm25_idf: np.ndarray | None = None
    bm25_average_length: float = 0.0
    bm25_k1: float = 100.0
    bm25_b: float = 0.8

    def scale(self, plays: csr_matrix) -> csr_matrix:
        """``scale(x)`` on the stored entries of a users × items matrix (plays or ratings)."""
        plays = csr_matrix(plays, dtype=np.float64, copy=True)
        row_totals = row_counts = None
        if self.scheme in PER_LISTENER_SCHEMES:
            entry_rows = row_of_entry(plays.indptr)
            row_totals = np.asarray(plays.sum(axis=1)).ravel()[entry_rows]
            row_counts = np.diff(plays.indptr)[entry_rows]
        plays.data = self._scaled(plays.data, plays.indices, plays.shape[1], row_totals, row_counts)
        return plays

    def scale_row(self, items: np.ndarray, plays: np.ndarray) -> np.ndarray:
        """:meth:`scale` of one user's entries, ``plays[j]`` of item ``items[j]``, float64:
        the same values as that user's row of a matrix, without building one (fold-in of one
        listener is a few dozen entries, where a sparse matrix's bookkeeping costs more than
        the arithmetic). Raw and rating scale nothing: they return ``plays`` itself where it
        is float64 already."""
        plays = np.asarray(plays, dtype=np.float64)
        # add.reduce is sum() without its Python-level wrapper: the same pairwise sum
        total = float(np.add.reduce(plays)) if self.scheme in PER_LISTENER_SCHEMES else None
        return self._scaled(plays, items, None, total, len(plays))

    def transform(self, plays: csr_matrix) -> csr_matrix:
        """The confidence ``1 + alpha * |scale(x)|`` on the stored entries, negated where
        ``scale`` is negative (preference 0), float32.

        This is the input matrix for ``implicit``'s ALS with its own ``alpha=1``: implicit
        uses an entry's absolute value as its confidence (it adds ``|value| - 1`` times
        ``y yᵀ`` to ``YᵀY``), so the ``1 +`` has to be in the data.
        """
        scaled = self.scale(plays)
        scaled.data = self._confidence(scaled.data)
        return scaled.astype(np.float32)

    def transform_row(self, items: np.ndarray, plays: np.ndarray) -> np.ndarray:
        """:meth:`transform` of one user's entries (as :meth:`scale_row`), float32."""
        return self._confidence(self.scale_row(items, plays)).astype(np.float32)

    def _scaled(
        self,
        plays: np.ndarray,
        items: np.ndarray,
        n_items: int | None,
        row_totals: np.ndarray | float | None,
        row_counts: np.ndarray | int | None,
    ) -> np.ndarray:
        """``scale`` of entries ``plays`` (float64, not modified) of ``items``; ``row_totals``
        and ``row_counts`` are each entry's user's sum and number of entries (arrays aligned
        with ``plays``, or one user's scalars), which only bm25 and centred read. ``n_items``,
        the matrix's width where there is one, is checked against bm25's idf."""
        if self.scheme in ("raw", "rating"):
            return plays
        if self.scheme == "log1p":
            return np.log1p(plays)
        if self.scheme == "binary":
            return np.ones_like(plays)
        if self.scheme == "centred":
            return plays - row_totals / np.maximum(row_counts, 1)
        if self.bm25_idf is None:
            raise ValueError("bm25 scaler has no idf: build it with fit_confidence")
        if n_items is not None and n_items != len(self.bm25_idf):
            raise ValueError(f"expected {len(self.bm25_idf)} items, got {n_items}")
        length_norm = (1.0 - self.bm25_b) + self.bm25_b * row_totals / self.bm25_average_length
        return (
            plays
            * (self.bm25_k1 + 1.0)
            / (self.bm25_k1 * length_norm + plays)
            * self.bm25_idf[items]
        )

    def _confidence(self, scaled: np.ndarray) -> np.ndarray:
        """``1 + alpha * |scaled|``, negated where ``scaled`` is negative (preference 0)."""
        confidence = 1.0 + self.alpha * np.abs(scaled)
        return np.negative(confidence, out=confidence, where=scaled < 0)

    def extras(self) -> dict[str, np.ndarray]:
        """Arrays for ``FactorModel.extras`` that ``from_extras`` rebuilds this scaler from."""
        if self.scheme != "bm25":
            return {}
        return {
            "bm25_idf": self.bm25_idf,
            "bm25_average_length": np.array([self.bm25_average_length]),
            "bm25_k1": np.array([self.bm25_k1]),
            "bm25_b": np.array([self.bm25_b]),
        }

    @classmethod
    def from_extras(
        cls, scheme: str, alpha: float, extras: dict[str, np.ndarray]
    ) -> ConfidenceScaler:
        """The scaler a model was trained with, from its params and ``extras``."""
        if scheme != "bm25":
            return cls(scheme=_checked(scheme), alpha=alpha)
        return cls(
            scheme=scheme,
            alpha=alpha,
            bm25_idf=extras["bm25_idf"],
            bm25_average_length=float(extras["bm25_average_length"][0]),
            bm25_k1=float(extras["bm25_k1"][0]),
            bm25_b=float(extras["bm25_b"][0]),
        )


def fit_confidence(
    plays: csr_matrix, scheme: str, alpha: float, k1: float = 100.0, b: float = 0.8
) -> ConfidenceScaler:
    """Learn what ``scheme`` needs from the training users × items matrix.

    Parameters
    ----------
    plays : csr_matrix
        users × items play counts (or, for the rating schemes, ratings) of the training users.
    scheme : str
        One of ``SCHEMES``: "raw", "log1p", "bm25" for plays, "binary", "rating", "centred"
        for ratings.
    alpha : float
        Confidence weight, ``c = 1 + alpha * scale(plays)``.
    k1, b : float
        BM25 constants (implicit's defaults); ignored by the other schemes.

    Returns
    -------
    ConfidenceScaler
    """
    if _checked(scheme) != "bm25":
        return ConfidenceScaler(scheme=scheme, alpha=alpha)
    plays = csr_matrix(plays)
    users_per_item = np.bincount(plays.indices, minlength=plays.shape[1])
    idf = np.log(plays.shape[0]) - np.log1p(users_per_item)
    average_length = float(np.asarray(plays.sum(axis=1)).mean())
    return ConfidenceScaler(
        scheme=scheme,
        alpha=alpha,
        bm25_idf=idf,
        bm25_average_length=average_length,
        bm25_k1=k1,
        bm25_b=b,
    )


def _checked(scheme: str) -> str:
    if scheme not in SCHEMES:
        raise ValueError(f"unknown confidence scheme {scheme!r}, expected one of {SCHEMES}")
    return scheme
