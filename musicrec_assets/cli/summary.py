"""What ``musicrec run`` prints when it is done: the files it ingested, the model it trained
beside the baselines on the same held-out part, and one listener's top 5 as a user sees it."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from musicrec_assets.evaluation.metrics import HEADLINE_METRICS
from musicrec_assets.home import Home
from musicrec_assets.warehouse.tables import connect, table_exists

# our models, in this order before the baselines
OURS = ["ranking", "rating"]
# the settings worth a glance (the rest are in the MLflow run)
CHOSEN_SETTINGS = ["rank", "regularization", "alpha", "confidence", "iterations"]


def print_summary(
    home: Home, since: float, run_id: str, success: bool, model: dict | None = None
) -> None:
    """``model``: the ``als_model`` materialization's metadata, when this run trained one."""
    print()
    print(f"run {run_id}: {'succeeded' if success else 'FAILED (see the lines above)'}")
    if not home.warehouse.exists():
        return
    started = datetime.fromtimestamp(since, UTC).replace(tzinfo=None)
    with connect(home.warehouse, read_only=True) as con:
        _print_files(con, started)
        if model:
            _print_model(con, model)
        _print_top_5(con)
    print(f'\nwarehouse: {home.warehouse}  (query it: musicrec sql "FROM user_recommendations")')


def _print_files(con, started: datetime) -> None:
    files = con.execute(
        """SELECT path, rows_read, rows_accepted, rows_rejected, failure FROM ingested_files
           WHERE ingested_at >= ? ORDER BY ingested_at, path""",
        [started],
    ).df()
    print(f"\nfiles ingested by this run: {len(files)}")
    if len(files):
        if files["failure"].isna().all():
            files = files.drop(columns="failure")
        print(_indent(files.to_string(index=False)))
    counts = [
        f"{table} {con.execute(f'SELECT count(*) FROM {table}').fetchone()[0]:,}"
        for table in ("users", "artists", "ratings", "rejected_rows")
        if table_exists(con, table)
    ]
    print(f"rows now: {', '.join(counts)}")


def _print_model(con, model: dict) -> None:
    version = str(model["model_version"])
    print(
        f"\nmodel musicrec-als v{version} ({model['feedback']} feedback), "
        f"{model['alias']}: {model['promotion']}"
    )
    for role, params in (model.get("params") or {}).items():
        chosen = [f"{name} {params[name]}" for name in CHOSEN_SETTINGS if name in params]
        print(f"chosen settings of the {role} model: {', '.join(chosen)}")
    if table_exists(con, "model_metrics"):
        print("held-out scores (the same split for every model):")
        print(_indent(comparison(con, version).to_string(na_rep="-", float_format="%.4f")))


def comparison(con, model_version: str) -> pd.DataFrame:
    """Model (ours first: ranking, rating; then the baselines) × the headline metrics it has,
    of one version."""
    metrics = con.execute(
        "SELECT model, metric, value FROM model_metrics WHERE model_version = ?", [model_version]
    ).df()
    table = metrics.pivot_table(index="model", columns="metric", values="value", sort=False)
    columns = [metric for metric in HEADLINE_METRICS if metric in table.columns]
    ours = [name for name in OURS if name in table.index]
    order = ours + sorted(name for name in table.index if name not in ours)
    return table.loc[order, columns].rename_axis(index=None, columns=None)


def _print_top_5(con) -> None:
    if not (table_exists(con, "user_recommendations") and table_exists(con, "users")):
        return
    first = con.execute("SELECT min(user_id) FROM user_recommendations").fetchone()[0]
    if first is None:
        return
    user = con.execute(
        "SELECT trim(concat_ws(' ', first_name, last_name)) FROM users WHERE id = ?", [first]
    ).fetchone()
    top = con.execute(
        """SELECT r.rank, coalesce(a.name, r.artist_id) AS artist, round(r.score, 3) AS score,
                  round(r.predicted_rating, 1) AS predicted_rating
           FROM user_recommendations r LEFT JOIN artists a ON a.id = r.artist_id
           WHERE r.user_id = ? ORDER BY r.rank LIMIT 5""",
        [first],
    ).df()
    if top["predicted_rating"].isna().all():  # play counts: nothing predicts ratings
        top = top.drop(columns="predicted_rating")
    name = f" ({user[0]})" if user and user[0] else ""
    print(f"\ntop 5 for user {first}{name}  (musicrec recommend {first} --explain says why):")
    print(_indent(top.to_string(index=False)))


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())
