"""What ``musicrec run`` prints when it is done: the files it ingested, the model it trained
beside the baselines on the same held-out part and a verdict on it in words, one listener's
top 5 as a user sees it, and what to try next."""

from __future__ import annotations

import shlex
import time
from datetime import UTC, datetime

import pandas as pd

from musicrec_assets.evaluation.metrics import HEADLINE_METRICS
from musicrec_assets.evaluation.promotion import NOISE_Z, RANKING_METRIC, RATING_METRIC
from musicrec_assets.home import REPO_ROOT, Home
from musicrec_assets.warehouse.tables import connect, table_exists

# our models, in this order before the baselines
OURS = ["ranking", "ranking_alone", "rating"]
# the settings worth a glance (the rest are in the MLflow run)
CHOSEN_SETTINGS = ["rank", "regularization", "alpha", "confidence", "iterations"]


def print_summary(
    home: Home, since: float, run_id: str, success: bool, model: dict | None = None
) -> None:
    """``model``: the ``als_model`` materialization's metadata, when this run trained one."""
    minutes, seconds = divmod(round(time.time() - since), 60)
    print()
    outcome = "succeeded" if success else "FAILED (see the lines above)"
    print(f"run {run_id}: {outcome} in {minutes}:{seconds:02d}")
    if not home.warehouse.exists():
        return
    started = datetime.fromtimestamp(since, UTC).replace(tzinfo=None)
    with connect(home.warehouse, read_only=True) as con:
        _print_files(con, started)
        if model:
            _print_model(con, model)
            print()
            for line in verdicts(model):
                print(line)
        _print_top_5(con, _home_flag(home))
    _print_next(home)


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
        chosen = [f"{name} {_setting(params[name])}" for name in CHOSEN_SETTINGS if name in params]
        print(f"chosen settings of the {role} model: {', '.join(chosen)}")
    if table_exists(con, "model_metrics"):
        print("held-out scores (the same split for every model):")
        print(_indent(comparison(con, version).to_string(na_rep="-", float_format="%.3f")))


# how a sentence names the baselines (any other by its name)
BASELINE_NAMES = {"item_knn": "item-kNN", "most_popular": "most popular"}


def verdicts(model: dict) -> list[str]:
    """One sentence for each of our models that the run trained: whether it beats the best
    of its baselines on the metric the gate judges it by, and by how much, or is level with it
    within the held-out noise; read from the ``als_model`` metadata (``<metric>``,
    ``<metric>_best_baseline``, ``<metric>_best_baseline_model`` and, where measured,
    ``<metric>_best_baseline_noise``)."""
    held_out = "ratings" if model.get("feedback") == "explicit" else "play counts"
    sentences = []
    for role, metric, higher_is_better in (
        ("ranking", RANKING_METRIC, True),
        ("rating", RATING_METRIC, False),
    ):
        if f"{metric}_best_baseline_model" not in model:
            continue
        ours, best = float(model[metric]), float(model[f"{metric}_best_baseline"])
        baseline = str(model[f"{metric}_best_baseline_model"])
        gain = (ours - best if higher_is_better else best - ours) / best if best else 0.0
        by = f"{abs(gain):.0%}" if abs(gain) >= 0.005 else "less than 1%"
        name = BASELINE_NAMES.get(baseline, baseline.replace("_", " "))
        noise = float(model.get(f"{metric}_best_baseline_noise", 0.0))
        if gain > 0:
            claim = f"beats the best baseline, {name}, by {by} {_metric_name(metric)}"
        elif best - ours < NOISE_Z * noise:
            claim = (
                f"is level with the best baseline, {name}, within the held-out noise ({by} "
                f"worse {_metric_name(metric)}, ±{noise:.3f})"
            )
        else:
            claim = f"does not beat the best baseline, {name}: {by} worse {_metric_name(metric)}"
        better = "higher" if higher_is_better else "lower"
        sentences.append(
            f"verdict: the {role} model {claim} on held-out {held_out} "
            f"({ours:.3f} vs {best:.3f}, {better} is better)"
        )
    return sentences


def _metric_name(metric: str) -> str:
    """``ndcg_at_10`` as NDCG@10, ``rmse`` as RMSE."""
    return metric.upper().replace("_AT_", "@").replace("_", " ")


def _setting(value) -> str:
    """A tuned value as a person reads it: a search's 0.012415370911319532 as 0.0124, its
    3649.394990235777 as 3649."""
    if not isinstance(value, float):
        return str(value)
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


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
    # to the 4 decimals of als_model's metadata, which the verdicts read: printed to 3, the
    # table and the sentences then round the same numbers the same way
    return table.loc[order, columns].round(4).rename_axis(index=None, columns=None)


def _print_top_5(con, home_flag: str) -> None:
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
                  round(r.predicted_rating, 2) AS predicted_rating
           FROM user_recommendations r LEFT JOIN artists a ON a.id = r.artist_id
           WHERE r.user_id = ? ORDER BY r.rank LIMIT 5""",
        [first],
    ).df()
    if top["predicted_rating"].isna().all():  # play counts: nothing predicts ratings
        top = top.drop(columns="predicted_rating")
    who = f"{user[0]} (user {first})" if user and user[0] else f"user {first}"
    explain = f"musicrec recommend{home_flag} {shlex.quote(first)} --explain"
    print(f"\ntop 5 for {who}; `{explain}` says why:")
    print(_indent(top.to_string(index=False)))


def _is_default(home: Home) -> bool:
    return home.root == Home(REPO_ROOT / ".musicrec").root


def _home_flag(home: Home) -> str:
    """What a musicrec command needs to read ``home``."""
    return "" if _is_default(home) else f" --home {shlex.quote(str(home.root))}"


def _print_next(home: Home) -> None:
    """The next three things to try, on this home."""
    environment = "" if _is_default(home) else f"MUSICREC_HOME={shlex.quote(str(home.root))} "
    query = "SELECT user_name, rank, artist_name, score FROM user_recommendations_named LIMIT 10"
    print(f"\nnext (the warehouse is {home.warehouse}):")
    print(f"  {environment}make ui        the Dagster UI: the asset graph, tables, checks, plots")
    print(f"  {environment}make mlflow    the MLflow UI: each run's settings, scores and plots")
    print(f'  musicrec sql{_home_flag(home)} "{query}"')


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())
