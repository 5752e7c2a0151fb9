"""Ingest assets: landing JSON files → the ``users``, ``artists`` and ``ratings`` tables."""

import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from musicrec_assets.defs.metadata import frame_table, table_metadata
from musicrec_assets.defs.resources import ModelSettings, MusicrecHome
from musicrec_assets.tracking import registry
from musicrec_assets.warehouse import feedback_kind, ingest, landing, refresh
from musicrec_assets.warehouse.tables import ensure_schema, scalar

PREVIEW_ROWS = 5
USER_RECOMMENDATIONS = dg.AssetKey("user_recommendations")
RAW_SHOWN = 200  # characters of a rejected record's raw text (the table has all of it)


def _ingest_kind(
    context: dg.AssetExecutionContext,
    kind: str,
    home: MusicrecHome,
    duckdb: DuckDBResource,
    feedback: str = "auto",
    then: Callable | None = None,
) -> dg.MaterializeResult:
    """Ingest this run's files of ``kind``; ``then(con)``, on the same connection after them
    (before the step publishes the warehouse), adds its own metadata."""
    files = [f for f in _files_of_run(context, home) if f.kind == kind]
    reports: list[ingest.IngestReport] = []
    failures: list[ingest.IngestReport] = []
    with duckdb.get_connection() as con:
        ensure_schema(con)
        if kind == "ratings":
            feedback_kind.settle(con, feedback)
        retried = ingest.retry_pending_ratings(con) if kind == "ratings" else 0
        if retried:
            context.log.info(f"{retried} ratings waiting for their user or artist now accepted")
        for file in files:
            report = ingest.ingest_file(con, file)
            if report.failure:
                context.log.warning(f"not ingested: {report.failure}")
                failures.append(report)
            elif not report.skipped:
                context.log.info(
                    f"{file.relative_path}: {report.rows_read} read, {report.rows_accepted} "
                    f"accepted, {report.rows_rejected} rejected"
                )
                reports.append(report)
        new_paths = [r.path for r in reports]
        table = table_metadata(con, kind, scalar(con, f"SELECT count(*) FROM {kind}"))
        taken = ingest.rows_from(con, kind, new_paths, PREVIEW_ROWS)
        rejected = ingest.rows_from(con, "rejected_rows", new_paths, PREVIEW_ROWS)
        more = {} if then is None else then(con)

    reasons = Counter()
    for report in reports:
        reasons.update(report.rejected_by_reason)
    metadata = {
        **table,
        "new_files": len(reports),
        "rows_accepted": sum(r.rows_accepted for r in reports),
        "rows_rejected": sum(r.rows_rejected for r in reports),
        "retried_and_accepted": retried,
        "failed_files": len(failures),
        **more,
    }
    # tables only where there is something to show: an empty one renders as a bare header
    if reports:
        files_table = pd.DataFrame(
            [(r.path, r.rows_read, r.rows_accepted, r.rows_rejected) for r in reports],
            columns=["file", "rows_read", "rows_accepted", "rows_rejected"],
        )
        metadata["files"] = frame_table(files_table)
        metadata["preview"] = frame_table(taken.drop(columns=["ingested_at"], errors="ignore"))
    if reasons:
        reasons_table = pd.DataFrame(sorted(reasons.items()), columns=["reason", "rows"])
        metadata["rejected_by_reason"] = frame_table(reasons_table)
        shown = rejected[["source_file", "record_no", "reason", "raw"]].copy()
        shown["raw"] = shown["raw"].str.slice(0, RAW_SHOWN)
        metadata["rejected_preview"] = frame_table(shown)
    if failures:
        metadata["failures"] = frame_table(
            pd.DataFrame([(r.path, r.failure) for r in failures], columns=["file", "why"])
        )
    return dg.MaterializeResult(metadata=metadata)


def _files_of_run(context: dg.AssetExecutionContext, home: MusicrecHome) -> list:
    """The landing files this run was started for, as the landing sensor or `musicrec run`
    approved them (its `landing.MANIFEST_TAG`), never one that appeared or changed since;
    a run started without a manifest (the schedule, the UI) takes the files that hold still."""
    carried = context.run.tags.get(landing.MANIFEST_TAG)
    if carried is None:
        return landing.settled(home.layout.landing)
    return landing.in_manifest(landing.scan(home.layout.landing), carried)


_COMMON = {
    "group_name": "ingest",
    "kinds": {"duckdb", "json"},
    "pool": "duckdb",
    "owners": ["team:musicrec"],
    "tags": {"layer": "ingest"},
}


@dg.asset(**_COMMON, description="Listeners, upserted by id from `landing/users/`.")
def users(
    context: dg.AssetExecutionContext, home: MusicrecHome, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    return _ingest_kind(context, "users", home, duckdb)


@dg.asset(**_COMMON, description="Artists, upserted by id from `landing/artists/`.")
def artists(
    context: dg.AssetExecutionContext, home: MusicrecHome, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    return _ingest_kind(context, "artists", home, duckdb)


@dg.asset(
    **_COMMON,
    deps=[users, artists],
    description=(
        "User→artist ratings or play counts from `landing/ratings/`, whichever the home holds "
        "(the `feedback` setting, else the first ratings file decides, once); the newest "
        "rating of a pair wins. Ratings that waited for an unknown user or artist are retried "
        "first. In a run that does not rebuild the recommendation tables, the listeners and "
        "artists that gained ratings since the champion was trained are then folded into it and "
        "their rows of `user_recommendations` and `artist_top_users` replaced (`source` "
        "`fold_in`), and the listeners enter the top users of the artists they score high for."
    ),
)
def ratings(
    context: dg.AssetExecutionContext,
    home: MusicrecHome,
    duckdb: DuckDBResource,
    settings: ModelSettings,
) -> dg.MaterializeResult:
    return _ingest_kind(
        context,
        "ratings",
        home,
        duckdb,
        settings.feedback,
        then=lambda con: _fold_in(context, con, home, settings),
    )


def _fold_in(
    context: dg.AssetExecutionContext, con, home: MusicrecHome, settings: ModelSettings
) -> dict:
    """Fold the listeners whose ratings the served lists do not reflect into the champion and
    replace their rows (:mod:`musicrec_assets.warehouse.refresh`), unless this run rebuilds the
    lists anyway. A fold-in that fails is logged and leaves the old rows: the ingest stands,
    and the next ingest run or retrain serves those listeners."""
    if USER_RECOMMENDATIONS in context.job_def.asset_layer.selected_asset_keys:
        return {"fold_in": "not needed: this run rebuilds user_recommendations"}
    todo = refresh.pending(con)
    if todo is None:
        return {}
    started = time.perf_counter()
    try:
        registry.use_existing_store(home.layout.root)
        version, folder = registry.champion_files(home.layout.root)
        report = refresh.fold_in_pending(
            con, folder, version, todo, settings.top_n, datetime.now(UTC).replace(tzinfo=None)
        )
    except Exception as error:  # the ingest is committed: it must not fail with the fold-in
        context.log.error(f"fold-in failed, the listeners' rows are as they were: {error!r}")
        return {"fold_in": f"failed: {error!r}"[:500]}
    context.log.info(f"fold-in: {report.summary()}")
    return {
        "fold_in": report.summary(),
        "fold_in_listeners": report.listeners,
        "fold_in_artists": report.artists,
        "fold_in_audiences": report.audiences,
        "fold_in_model_version": version,
        "fold_in_seconds": round(time.perf_counter() - started, 3),
    }
