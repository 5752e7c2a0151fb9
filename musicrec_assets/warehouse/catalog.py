"""What every public table's columns mean: the README's table reference, as data, so the
Dagster UI can show each column's type (read from DuckDB) beside its meaning."""

from __future__ import annotations

import duckdb

_RECOMMENDATION = {
    "rank": "1 = best",
    "model_version": "the MLflow registered version of musicrec-als that made the row",
}
_FACTORS_SOURCE = (
    "ratings (trained on its ratings) or tags (nobody had rated it: placed by the mapping of "
    "its tags into the factor space)"
)
_REFRESHED_AT = "when the row was computed: the table's build, or the fold-in"
COLUMNS: dict[str, dict[str, str]] = {
    "users": {
        "id": "user id",
        "first_name": "as last sent",
        "last_name": "as last sent",
        "source_file": "landing file of the newest version of the row",
        "ingested_at": "when that file was ingested",
    },
    "artists": {
        "id": "artist id",
        "name": "as last sent",
        "source_file": "landing file of the newest version of the row",
        "ingested_at": "when that file was ingested",
    },
    "artist_tags": {
        "artist_id": "artists.id",
        "tag": "lower case, white space trimmed and collapsed",
        "weight": "1 for a listed tag, else as given (e.g. the listeners who applied it)",
    },
    "ratings": {
        "user_id": "users.id",
        "artist_id": "artists.id",
        "rating": "explicit rating, 0.5–5.0 in half stars",
        "plays": "play count (implicit feedback)",
        "timestamp": "when the listener rated; the newest rating of a pair wins",
        "source_file": "landing file the rating came from",
        "ingested_at": "when that file was ingested",
    },
    "ingested_files": {
        "path": "path inside the landing folder",
        "sha256": "content hash: once per content, again where its path held other content since",
        "kind": "users, artists or ratings",
        "size_bytes": "size when ingested",
        "mtime_ns": "modification time when ingested",
        "rows_read": "records in the file",
        "rows_accepted": "records stored",
        "rows_rejected": "records in rejected_rows",
        "ingested_at": "when",
    },
    "rejected_rows": {
        "source_file": "landing file",
        "sha256": "its content hash",
        "kind": "users, artists or ratings",
        "record_no": "position of the record in the file",
        "raw": "the record as sent",
        "reason": "why it was rejected",
        "rejected_at": "when",
    },
    "evaluation_split": {
        "user_id": "users.id",
        "artist_id": "artists.id",
        "part": "train or test: every model and baseline is scored on the test part",
    },
    "tuning_trials": {
        "trial": "1-based trial number, across the models",
        "model": "ranking, rating (ratings only) or item_knn (the baseline)",
        "rank": "number of latent factors (ALS only)",
        "regularization": "λ (ALS only)",
        "bias_regularization": "the biases' own λ (rating model only)",
        "alpha": "confidence scale (ranking model only)",
        "confidence": "confidence scheme (ranking model only)",
        "iterations": "ALS iterations",
        "feedback": "what the data holds: explicit (ratings) or implicit (play counts)",
        "metric": "the metric that chooses",
        "cv_score": "its mean over the folds",
        "cv_metrics": "every metric's mean over the folds (JSON)",
        "params": "all training params (JSON; objective: ranking or rating, named feedback "
        "(implicit or explicit) in tunings of older versions)",
        "chosen": "the trial of its model whose params training uses",
        "pruned": "stopped after a fold by the pruner, clearly losing (never chosen)",
        "mlflow_run_id": "the tuning's MLflow run",
        "tuned_at": "when",
    },
    "model_metrics": {
        "model_version": "registered version of musicrec-als",
        "mlflow_run_id": "its training run",
        "trained_at": "when",
        "feedback": "what the data holds: explicit (ratings) or implicit (play counts)",
        "model": "ranking, rating (ratings only), or the baseline scored beside them",
        "metric": "metric name, on the held-out part",
        "value": "its value",
    },
    "user_recommendations": {
        "user_id": "users.id",
        **_RECOMMENDATION,
        "artist_id": "recommended artist (never one the user rated or played)",
        "score": "the ranking model's score, which orders the list (for ratings standardised "
        "per listener plus w × the predicted rating)",
        "predicted_rating": "the rating model's predicted rating (NULL for play counts)",
        "created_at": "when the table was built",
        "source": "model (the champion's own row) or fold_in (the listener folded into the "
        "champion from their ratings since it was trained)",
        "refreshed_at": _REFRESHED_AT,
    },
    "artist_top_users": {
        "artist_id": "artists.id",
        **_RECOMMENDATION,
        "user_id": "a user to promote the artist to (never a current listener)",
        "score": "the ranking model's score of the user for the artist",
        "source": "model (the champion's own row), fold_in (the artist folded into the "
        "champion from its ratings since it was trained) or tags (nobody had rated the artist: "
        "placed by its tags)",
        "refreshed_at": _REFRESHED_AT,
    },
    "similar_artists": {
        "artist_id": "artists.id",
        **_RECOMMENDATION,
        "similar_artist_id": "a similar artist",
        "similarity": "cosine of the two artists' ranking-model factors",
        "artist_source": _FACTORS_SOURCE,
        "similar_artist_source": _FACTORS_SOURCE,
    },
    "user_factors": {
        "user_id": "users.id",
        "model": "ranking or rating (ratings only): the model the vector belongs to",
        "factors": "the user's vector, biases folded in, zero-padded to the widest model's",
        "model_version": _RECOMMENDATION["model_version"],
    },
    "artist_factors": {
        "artist_id": "artists.id",
        "model": "ranking or rating (ratings only)",
        "factors": "the artist's vector: array_inner_product with a user's of the same model is "
        "its score (ranking score, or predicted rating)",
        "model_version": _RECOMMENDATION["model_version"],
        "source": _FACTORS_SOURCE,
    },
}


def columns(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str, str]]:
    """(name, DuckDB type, meaning) of each column of ``table``, in table order."""
    meanings = COLUMNS[table]
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return [(name, data_type, meanings.get(name, "")) for name, data_type in rows]
