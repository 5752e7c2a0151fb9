"""Answering recommendation requests from a trained model: what the MLflow model serves and
what ``musicrec recommend --ratings`` prints.

A request names a known ``user_id``, or gives a new listener's ``ratings`` (a list of
``{"artist_id": ..., "rating": ...}`` or ``{"artist_id": ..., "plays": ...}``), which are
folded into the models without retraining. The ranking model orders the lists (``score``); for
ratings the rating model predicts the rating the listener would give each artist
(``predicted_rating``; None for play counts). A new artist is folded in the same way from known
users' ratings of it (``{"user_id": ..., "rating": ...}``) to find whom to promote it to. Ids
the model does not know are reported, never silently dropped. An artist nobody had rated
when the version was trained, placed by its tags (``tag_factors.*`` beside the models), has an
audience too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix, load_npz

from musicrec_assets.model.factors import ModelPair
from musicrec_assets.model.tag_mapping import TagFactors
from musicrec_assets.serving import fold_in, topn
from musicrec_assets.serving.placed import PlacedArtists

RESULT_COLUMNS = [
    "request",
    "user_id",
    "rank",
    "artist_id",
    "artist_name",
    "score",
    "predicted_rating",
]


class UnknownIdError(ValueError):
    """A request names a user or artist the model does not know."""


@dataclass
class Answer:
    recommendations: pd.DataFrame  # rank, artist_id, artist_name, score, predicted_rating
    unknown_artist_ids: list[str] = field(default_factory=list)


@dataclass
class Reasons:
    """Why a list of picks (:meth:`Recommender._reasons`): rated artists, each with
    ``artist_id``, ``artist_name``, ``value`` (the rating or plays) and ``contribution``, its
    share of the score: in ``shared`` its mean over the picks, in ``by_pick`` its share of
    that pick beyond the mean."""

    shared: pd.DataFrame  # what weighs most across the list (empty for a single pick)
    by_pick: list[pd.DataFrame]  # each pick's own, in the order the picks were given


@dataclass
class Audience:
    users: pd.DataFrame  # rank, user_id, score
    unknown_user_ids: list[str] = field(default_factory=list)


# the ranges ingestion accepts (warehouse.ingest.fields): a request is judged as data is
VALUE_RULES = {
    "rating": ("a number from 0.5 to 5.0", lambda value: 0.5 <= value <= 5.0),
    "plays": ("a finite number of at least 0", lambda value: 0 <= value < math.inf),
}


def _refuse_bad_values(ratings: list[Mapping], id_key: str, value_key: str) -> None:
    """Raise ValueError naming every entry whose ``value_key`` breaks its rule (a missing or
    null value is left to the caller); a score from an out-of-range rating means nothing."""
    rule, holds = VALUE_RULES[value_key]
    bad = [
        f"#{position} ({id_key} {entry.get(id_key)!r}: {value_key} {entry[value_key]!r})"
        for position, entry in enumerate(ratings, start=1)
        if entry.get(value_key) is not None and not _is_valid(entry[value_key], holds)
    ]
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise ValueError(f"{value_key} must be {rule}; refused: {shown}")


def _is_valid(value, holds) -> bool:
    # NaN fails every comparison, so `holds` refuses it; True is a number only to Python
    return isinstance(value, Real) and not isinstance(value, bool) and holds(value)


class Recommender:
    """Answers requests from one registered version: ``list_model`` (its ranking model, or
    for ratings its blend with the rating model) orders every user's list, ``model`` (its
    ranking model) folds listeners in, explains and finds an artist's audience,
    ``rating_model`` (None for play counts) predicts ratings."""

    def __init__(
        self,
        models: ModelPair,
        seen: csr_matrix,
        artist_names: pd.DataFrame,
        tag_factors: tuple[np.ndarray, TagFactors] | None = None,
    ):
        self.models = models
        self.model = models.ranking
        self.rating_model = models.rating
        # what orders the users' lists: the ranking model, or its blend with the rating model
        self.list_model = models.list_model()
        self.feedback = models.feedback
        self.seen = seen.tocsr()
        # computed once: each call folds the biases in with a copy of the whole matrix
        self._user_vectors = self.list_model.user_vectors()
        self._item_vectors = self.list_model.item_vectors()
        if self.rating_model is not None:
            self._rating_user_vectors = self.rating_model.user_vectors()
            self._rating_item_vectors = self.rating_model.item_vectors()
        self._user_row = pd.Index(self.model.user_ids)
        self._item_row = pd.Index(self.model.item_ids)
        names = artist_names.set_index("artist_id")["name"]
        self._names = names.reindex(self.model.item_ids).to_numpy()
        # the artists nobody had rated when the version was trained, placed by their tags
        # (published ones only), and their rating model's vectors
        self._placed = PlacedArtists.of(tag_factors)
        placed_ids = np.zeros(0, dtype=str) if self._placed is None else self._placed.ids
        self._placed_row = pd.Index(placed_ids)
        self._placed_rating_vectors = (
            None if self._placed is None else tag_factors[1].vectors.get("rating")
        )
        self._placed_names = names.reindex(placed_ids).to_numpy()

    @classmethod
    def from_folder(cls, folder: str | Path) -> Recommender:
        """Load from the files :func:`musicrec_assets.tracking.registry.log_model` writes (or,
        for a version logged before the rating model, its one model)."""
        folder = Path(folder)
        return cls(
            ModelPair.load(folder, "factors"),
            load_npz(folder / "seen.npz"),
            pd.read_parquet(folder / "artist_names.parquet"),
            TagFactors.load(folder),
        )

    def predicted_ratings(self, user_rows: np.ndarray, item_rows: np.ndarray) -> np.ndarray | None:
        """The rating model's predictions of (user row, item row) pairs; None for play counts."""
        if self.rating_model is None:
            return None
        return np.einsum(
            "ij,ij->i",
            self._rating_user_vectors[user_rows].astype(np.float64),
            self._rating_item_vectors[item_rows].astype(np.float64),
        )

    def predicted_rating(self, user_id: str, artist_id: str) -> float | None:
        """The rating model's prediction of a known pair; None for play counts."""
        user_row = self._user_row.get_indexer([user_id])[0]
        item_row = self._item_row.get_indexer([artist_id])[0]
        if user_row < 0 or item_row < 0:
            raise UnknownIdError(f"unknown user {user_id!r} or artist {artist_id!r}")
        predicted = self.predicted_ratings(np.array([user_row]), np.array([item_row]))
        return None if predicted is None else float(predicted[0])

    def _frame(self, item_index: np.ndarray, scores: np.ndarray, predict) -> pd.DataFrame:
        """The answer's rows; ``predict(item rows)`` gives their predicted ratings or None."""
        valid = item_index >= 0
        item_index, scores = item_index[valid], scores[valid]
        predicted = predict(item_index)
        return pd.DataFrame(
            {
                "rank": np.arange(1, len(item_index) + 1, dtype=np.int32),
                "artist_id": self.model.item_ids[item_index],
                "artist_name": self._names[item_index],
                "score": scores.astype(float),
                "predicted_rating": [None] * len(item_index) if predicted is None else predicted,
            }
        )

    def for_user(self, user_id: str, n: int = 10) -> Answer:
        row = self._user_row.get_indexer([user_id])[0]
        if row < 0:
            raise UnknownIdError(f"unknown user {user_id!r}")
        item_index, scores = topn.top_n_items(
            self._user_vectors[row : row + 1],
            self._item_vectors,
            self.seen[row],
            n,
        )
        return Answer(
            self._frame(
                item_index[0],
                scores[0],
                lambda items: self.predicted_ratings(np.full(len(items), row), items),
            )
        )

    def _history(
        self, ratings: list[dict], id_key: str, row_of: pd.Index, what: str
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Known rows, their values and the unknown ids of ``[{id_key: ..., rating|plays: ...}]``;
        a repeated id keeps its last value."""
        value_key = "rating" if self.feedback == "explicit" else "plays"
        shape = f"ratings must be a non-empty list of {{{id_key}, {value_key}}}"
        if not all(isinstance(entry, Mapping) for entry in ratings):
            raise ValueError(shape)
        _refuse_bad_values(ratings, id_key, value_key)
        history = pd.DataFrame(ratings)
        if history.empty or id_key not in history or value_key not in history:
            raise ValueError(shape)
        history = history.dropna(subset=[value_key]).drop_duplicates(id_key, keep="last")
        rows = row_of.get_indexer(history[id_key].astype(str))
        unknown = history[id_key][rows < 0].astype(str).tolist()
        if (rows >= 0).sum() == 0:
            raise UnknownIdError(f"none of the {what} is known to the model: {unknown}")
        return rows[rows >= 0], history[value_key][rows >= 0].to_numpy(float), unknown

    def for_new_listener(self, ratings: list[dict], n: int = 10) -> Answer:
        """Top ``n`` for a listener the models do not know, folded into both from ``ratings``
        (the ranking model with the confidence scheme it was trained with)."""
        rows, values, unknown = self._history(ratings, "artist_id", self._item_row, "rated artists")
        item_index, scores = fold_in.recommend_new_listener(self.models, rows, values, n)

        def predict(items: np.ndarray) -> np.ndarray | None:
            if self.rating_model is None:
                return None
            return fold_in.predict_new_user(self.rating_model, rows, values, items)

        return Answer(self._frame(item_index, scores, predict), unknown)

    def for_new_artist(self, ratings: list[dict], n: int = 10) -> Audience:
        """The users to promote a new artist to, from known users' ``ratings`` of it (a list of
        ``{"user_id": ..., "rating": ...}``, or ``"plays"`` for an implicit model); those users
        are left out.

        Raises
        ------
        UnknownIdError
            None of the users is known.
        ValueError
            Malformed ``ratings``, or an implicit model with bm25 confidence, which cannot fold
            in an artist (:func:`~musicrec_assets.serving.fold_in.fold_in_item`).
        """
        rows, values, unknown = self._history(ratings, "user_id", self._user_row, "users")
        user_index, scores = fold_in.promote_new_item(self.model, rows, values, n)
        valid = user_index >= 0
        users = pd.DataFrame(
            {
                "rank": np.arange(1, valid.sum() + 1, dtype=np.int32),
                "user_id": self.model.user_ids[user_index[valid]],
                "score": scores[valid].astype(float),
            }
        )
        return Audience(users, unknown)

    def for_artist(self, artist_id: str, n: int = 10) -> Audience:
        """The ``n`` users to promote a known artist to, its listeners left out, as
        ``artist_top_users`` ranks them; an artist nobody had rated, placed by its tags, too
        (nobody to leave out; users by their spread where its gate chose so)."""
        user_vectors, item_vectors = self.model.user_vectors(), self.model.item_vectors()
        row = self._item_row.get_indexer([artist_id])[0]
        placed = self._placed_row.get_indexer([artist_id])[0]
        if row >= 0:
            listeners = csr_matrix(self.seen[: self.model.n_users, row].T)
            user_index, scores = topn.top_n_users(
                item_vectors[row : row + 1], user_vectors, n=n, exclude=listeners
            )
        elif placed >= 0:
            user_index, scores = self._placed.top_users([placed], user_vectors, item_vectors, n)
        else:
            raise UnknownIdError(f"unknown artist {artist_id!r}")
        valid = user_index[0] >= 0
        return Audience(
            pd.DataFrame(
                {
                    "rank": np.arange(1, valid.sum() + 1, dtype=np.int32),
                    "user_id": self.model.user_ids[user_index[0][valid]],
                    "score": scores[0][valid].astype(float),
                }
            )
        )

    def predicted_ratings_of_artist(
        self, artist_id: str, user_ids: np.ndarray
    ) -> np.ndarray | None:
        """The rating model's predictions of ``artist_id`` (known or placed by its tags) for
        known ``user_ids``; None for play counts."""
        if self.rating_model is None:
            return None
        users = self._rating_user_vectors[self._user_row.get_indexer(user_ids)]
        row = self._item_row.get_indexer([artist_id])[0]
        if row >= 0:
            vector = self._rating_item_vectors[row]
        else:
            placed = self._placed_row.get_indexer([artist_id])[0]
            vector = self._placed_rating_vectors[placed, : users.shape[1]]
        return users.astype(np.float64) @ vector.astype(np.float64)

    def artist_names(self, artist_ids: list[str]) -> list[str | None]:
        """The names of ``artist_ids``; None for an artist the model does not know (nor
        placed by its tags)."""
        rows = self._item_row.get_indexer(artist_ids)
        placed = self._placed_row.get_indexer(artist_ids)
        return [
            self._names[row] if row >= 0 else self._placed_names[at] if at >= 0 else None
            for row, at in zip(rows, placed, strict=True)
        ]

    def explain_user(self, user_id: str, artist_ids: list[str], top: int = 3) -> Reasons:
        """Why ``user_id`` gets the picks ``artist_ids`` (:meth:`_reasons`), from their
        history."""
        row = self._user_row.get_indexer([user_id])[0]
        if row < 0:
            raise UnknownIdError(f"unknown user {user_id!r}")
        history = self.seen[row]
        return self._reasons(history.indices, history.data, artist_ids, top)

    def explain_new_listener(
        self, ratings: list[dict], artist_ids: list[str], top: int = 3
    ) -> Reasons:
        """Why a new listener gets the picks ``artist_ids``, from ``ratings`` as
        :meth:`for_new_listener` takes them."""
        rows, values, _ = self._history(ratings, "artist_id", self._item_row, "rated artists")
        return self._reasons(rows, values, artist_ids, top)

    def _reasons(
        self, items: np.ndarray, values: np.ndarray, artist_ids: list[str], top: int
    ) -> Reasons:
        """Each history artist's exact share of each pick's score, the ranking model's
        (:func:`fold_in.explain`, ``implicit``'s ``explain``), told in two parts.

        A strongly regularized model leans on the same few heavy artists of a history for
        every pick, so the top shares alone name the same artists for the whole list: those
        are ``shared`` (the largest mean share over the picks), and each pick's own are the
        artists whose share of it most exceeds their mean share. A single pick has no list
        to share with: its own are its largest shares.
        """
        pick_rows = self._item_row.get_indexer(artist_ids)
        if (pick_rows < 0).any():
            unknown = [a for a, row in zip(artist_ids, pick_rows, strict=True) if row < 0]
            raise UnknownIdError(f"unknown artists {unknown}")
        shares = np.zeros((len(pick_rows), len(items)))
        for pick, row in enumerate(pick_rows):
            explanation = fold_in.explain(self.model, items, values, row)
            # artists of no weight (negative feedback) are left out of the explanation
            shares[pick] = (
                pd.Series(explanation.contributions, index=explanation.items)
                .reindex(items, fill_value=0.0)
                .to_numpy()
            )

        def chosen(order_by: np.ndarray) -> pd.DataFrame:
            positions = np.argsort(-order_by, kind="stable")[:top]
            positions = positions[order_by[positions] > 0]
            return pd.DataFrame(
                {
                    "artist_id": self.model.item_ids[items[positions]],
                    "artist_name": self._names[items[positions]],
                    "value": values[positions].astype(float),
                    "contribution": order_by[positions],
                }
            )

        if len(pick_rows) == 1:
            return Reasons(shared=chosen(np.zeros(len(items))), by_pick=[chosen(shares[0])])
        mean_share = shares.mean(axis=0)
        return Reasons(
            shared=chosen(mean_share), by_pick=[chosen(own - mean_share) for own in shares]
        )

    def predict(self, requests: pd.DataFrame) -> pd.DataFrame:
        """One block of rows per request, with columns ``user_id``, ``ratings``, ``artist_id``
        (each optional) and ``n``:

        - ``user_id``: that listener's list; ``ratings`` (of artists): a new listener's;
        - ``artist_id``: the users to promote the artist to (one row per user, the artist's
          id and name on each); with ``ratings`` (known users' ratings of it, ``{"user_id",
          "rating"}``): a new artist's, folded in from them.
        """
        frames = []
        for position, request in enumerate(requests.to_dict("records")):
            n = int(request.get("n") or 10)
            ratings = request.get("ratings")
            if isinstance(ratings, str):
                ratings = json.loads(ratings)
            # a missing cell arrives as None or NaN, depending on the DataFrame's dtype
            user_id, artist_id = (
                value if isinstance(value, str) and value else None
                for value in (request.get("user_id"), request.get("artist_id"))
            )
            has_ratings = isinstance(ratings, list | tuple | np.ndarray) and len(ratings) > 0
            if artist_id is not None and user_id is not None:
                raise ValueError(f"request {position} names a user_id and an artist_id: one")
            if artist_id is not None:
                frames.append(self._audience_rows(position, artist_id, ratings, has_ratings, n))
                continue
            if user_id is not None and not has_ratings:
                answer = self.for_user(user_id, n)
            elif has_ratings:
                answer = self.for_new_listener(list(ratings), n)
            else:
                raise ValueError(
                    f"request {position} has neither a user_id, ratings nor an artist_id"
                )
            frame = answer.recommendations
            frame.insert(0, "user_id", user_id)
            frame.insert(0, "request", position)
            frames.append(frame)
        return (
            pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=RESULT_COLUMNS)
        )

    def _audience_rows(
        self, position: int, artist_id: str, ratings, has_ratings: bool, n: int
    ) -> pd.DataFrame:
        """:meth:`predict`'s rows of an artist request: its audience, user by user."""
        if has_ratings:
            users = self.for_new_artist(list(ratings), n).users
            name, predicted = None, None  # a new artist: no rating model vector, no name
        else:
            users = self.for_artist(artist_id, n).users
            [name] = self.artist_names([artist_id])
            predicted = self.predicted_ratings_of_artist(artist_id, users["user_id"].to_numpy())
        return pd.DataFrame(
            {
                "request": position,
                "user_id": users["user_id"],
                "rank": users["rank"],
                "artist_id": artist_id,
                "artist_name": name,
                "score": users["score"],
                "predicted_rating": [None] * len(users) if predicted is None else predicted,
            },
            columns=RESULT_COLUMNS,
        )
