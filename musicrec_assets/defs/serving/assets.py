"""Serving assets: recommendation tables in the warehouse, computed from the champion model.

Every table is built under a staging name and swapped in with one transaction
(``publish_table``), and every row carries the MLflow registered ``model_version`` that made it.
"""

import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
from dagster_duckdb import DuckDBResource

from musicrec_assets.defs.resources import MlflowTracking, ModelSettings
from musicrec_assets.defs.training.assets import als_model
from musicrec_assets.serving import recommend
from musicrec_assets.serving.recommender import Recommender
from musicrec_assets.tracking import registry as tracking
from musicrec_assets.warehouse.tables import publish_table

CHUNK_ROWS = 50_000  # queries per chunk: bounds memory on large catalogues
# one view per table, with user and artist names, created beside it
NAMED_VIEWS = {
    "user_recommendations": """
CREATE OR REPLACE VIEW user_recommendations_named AS
SELECT r.user_id, nullif(concat_ws(' ', u.first_name, u.last_name), '') AS user_name, r.rank,
       r.artist_id, a.name AS artist_name, r.score, r.model_version, r.created_at
FROM user_recommendations r
LEFT JOIN users u ON u.id = r.user_id LEFT JOIN artists a ON a.id = r.artist_id""",
    "artist_top_users": """
CREATE OR REPLACE VIEW artist_top_users_named AS
SELECT t.artist_id, a.name AS artist_name, t.rank, t.user_id,
       nullif(concat_ws(' ', u.first_name, u.last_name), '') AS user_name, t.score,
       t.model_version
FROM artist_top_users t
LEFT JOIN users u ON u.id = t.user_id LEFT JOIN artists a ON a.id = t.artist_id""",
    "similar_artists": """
CREATE OR REPLACE VIEW similar_artists_named AS
SELECT s.artist_id, a.name AS artist_name, s.rank, s.similar_artist_id,
       b.name AS similar_artist_name, s.similarity, s.model_version
FROM similar_artists s
LEFT JOIN artists a ON a.id = s.artist_id LEFT JOIN artists b ON b.id = s.similar_artist_id""",
}
_COMMON = {
    "group_name": "serving",
    "owners": ["team:musicrec"],
    "tags": {"layer": "serving"},
    "pool": "duckdb",
    "kinds": {"duckdb", "numpy"},
    "deps": [als_model],
}


def _champion() -> tuple[str, Recommender]:
    """The champion model; callers take the ``mlflow_tracking`` resource, whose set-up points
    MLflow at the store."""
    with tempfile.TemporaryDirectory() as tmp:
        version, folder = tracking.download_model(Path(tmp))
        return version, Recommender.from_folder(folder)


def _top_n_chunks(
    query_ids: np.ndarray,
    candidate_ids: np.ndarray,
    top_n: Callable[[slice], tuple[np.ndarray, np.ndarray]],
    columns: tuple[str, str, str, str],
    extra: dict,
) -> Iterator[pd.DataFrame]:
    """Long-format top-N rows, ``CHUNK_ROWS`` queries at a time; ``top_n(rows)`` scores a slice."""
    for start in range(0, len(query_ids), CHUNK_ROWS):
        rows = slice(start, min(start + CHUNK_ROWS, len(query_ids)))
        flat = recommend.flatten_top_n(query_ids[rows], candidate_ids, *top_n(rows))
        yield pd.DataFrame(dict(zip(columns, flat, strict=True))).assign(**extra)


def _coverage(con, table: str, column: str) -> float:
    covered, total = con.execute(
        f"SELECT (SELECT count(DISTINCT {column}) FROM {table}), (SELECT count(*) FROM artists)"
    ).fetchall()[0]
    return covered / total if total else 0.0


def _preview(con, view: str, key: str) -> str:
    frame = con.execute(
        f"SELECT * EXCLUDE (model_version) FROM {view} "
        f"WHERE {key} IN (SELECT DISTINCT {key} FROM {view} ORDER BY {key} LIMIT 3) "
        f"AND rank <= 5 ORDER BY {key}, rank"
    ).df()
    return frame.drop(columns=["created_at"], errors="ignore").to_markdown(index=False)


@dg.asset(
    **_COMMON,
    description="Top-N artists per user (already-rated artists excluded), the seed's "
    "`recommendForAllUsers`: `user_recommendations(user_id, rank, artist_id, score, "
    "model_version, created_at)`, and the view `user_recommendations_named`.",
)
def user_recommendations(
    duckdb: DuckDBResource, settings: ModelSettings, mlflow_tracking: MlflowTracking
) -> dg.MaterializeResult:
    version, recommender = _champion()
    model = recommender.model
    user_vectors, item_vectors = model.user_vectors(), model.item_vectors()
    chunks = _top_n_chunks(
        model.user_ids,
        model.item_ids,
        lambda rows: recommend.top_n_items(
            user_vectors[rows], item_vectors, seen=recommender.seen[rows], n=settings.top_n
        ),
        ("user_id", "rank", "artist_id", "score"),
        {"model_version": version, "created_at": datetime.now(UTC).replace(tzinfo=None)},
    )
    with duckdb.get_connection() as con:
        rows = publish_table(con, "user_recommendations", chunks)
        con.execute(NAMED_VIEWS["user_recommendations"])
        coverage = _coverage(con, "user_recommendations", "artist_id")
        preview = _preview(con, "user_recommendations_named", "user_id")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "model_version": version,
            "catalogue_coverage": coverage,
            "preview": dg.MetadataValue.md(preview),
        }
    )


@dg.asset(
    **_COMMON,
    description="Top-N users per artist, who to promote an artist to (its current listeners "
    "excluded), the seed's `recommendForAllItems`: `artist_top_users(artist_id, rank, user_id, "
    "score, model_version)` and the view `artist_top_users_named`.",
)
def artist_top_users(
    duckdb: DuckDBResource, settings: ModelSettings, mlflow_tracking: MlflowTracking
) -> dg.MaterializeResult:
    version, recommender = _champion()
    model = recommender.model
    user_vectors, item_vectors = model.user_vectors(), model.item_vectors()
    listeners = recommender.seen.T.tocsr()
    chunks = _top_n_chunks(
        model.item_ids,
        model.user_ids,
        lambda rows: recommend.top_n_users(
            item_vectors[rows], user_vectors, n=settings.top_n, exclude=listeners[rows]
        ),
        ("artist_id", "rank", "user_id", "score"),
        {"model_version": version},
    )
    with duckdb.get_connection() as con:
        rows = publish_table(con, "artist_top_users", chunks)
        con.execute(NAMED_VIEWS["artist_top_users"])
        preview = _preview(con, "artist_top_users_named", "artist_id")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "model_version": version,
            "preview": dg.MetadataValue.md(preview),
        }
    )


@dg.asset(
    **_COMMON,
    description="Most similar artists by cosine similarity of their factors: "
    "`similar_artists(artist_id, rank, similar_artist_id, similarity, model_version)` and the "
    "view `similar_artists_named`.",
)
def similar_artists(
    duckdb: DuckDBResource, settings: ModelSettings, mlflow_tracking: MlflowTracking
) -> dg.MaterializeResult:
    version, recommender = _champion()
    model = recommender.model
    index, similarity = recommend.similar_items(model.item_factors, settings.top_n)
    flat = recommend.flatten_top_n(model.item_ids, model.item_ids, index, similarity)
    frame = pd.DataFrame(
        dict(zip(("artist_id", "rank", "similar_artist_id", "similarity"), flat, strict=True))
    ).assign(model_version=version)
    with duckdb.get_connection() as con:
        rows = publish_table(con, "similar_artists", [frame])
        con.execute(NAMED_VIEWS["similar_artists"])
        preview = _preview(con, "similar_artists_named", "artist_id")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "model_version": version,
            "preview": dg.MetadataValue.md(preview),
        }
    )


def _factor_table(ids: np.ndarray, id_column: str, vectors: np.ndarray, version: str) -> pa.Table:
    width = vectors.shape[1]
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel())
    return pa.table(
        {
            id_column: pa.array(ids.astype(str)),
            "factors": pa.FixedSizeListArray.from_arrays(flat, width),
            "model_version": pa.array([version] * len(ids)),
        }
    )


@dg.asset(
    **_COMMON,
    description="`user_factors(user_id, factors FLOAT[k])` and `artist_factors(artist_id, "
    "factors FLOAT[k])`: the champion's vectors, biases folded in, so that "
    "`array_inner_product(u.factors, a.factors)` is the model's score for any pair.",
)
def factor_tables(duckdb: DuckDBResource, mlflow_tracking: MlflowTracking) -> dg.MaterializeResult:
    version, recommender = _champion()
    model = recommender.model
    with duckdb.get_connection() as con:
        users = publish_table(
            con,
            "user_factors",
            [_factor_table(model.user_ids, "user_id", model.user_vectors(), version)],
        )
        artists = publish_table(
            con,
            "artist_factors",
            [_factor_table(model.item_ids, "artist_id", model.item_vectors(), version)],
        )
    return dg.MaterializeResult(
        metadata={
            "user_rows": users,
            "artist_rows": artists,
            "model_version": version,
            "width": int(model.user_vectors().shape[1]),
        }
    )
