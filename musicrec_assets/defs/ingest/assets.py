"""Ingest assets: landing JSON files → the ``users``, ``artists`` and ``ratings`` tables."""

from collections import Counter

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from musicrec_assets.defs.resources import MusicrecHome
from musicrec_assets.warehouse import ingest, landing
from musicrec_assets.warehouse.tables import ensure_schema, scalar

PREVIEW_ROWS = 5


def _ingest_kind(
    context: dg.AssetExecutionContext, kind: str, home: MusicrecHome, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    files = [f for f in landing.scan(home.layout.landing) if f.kind == kind]
    reports: list[ingest.IngestReport] = []
    with duckdb.get_connection() as con:
        ensure_schema(con)
        retried = ingest.retry_pending_ratings(con) if kind == "ratings" else 0
        if retried:
            context.log.info(f"{retried} ratings waiting for their user or artist now accepted")
        for file in files:
            report = ingest.ingest_file(con, file)
            if not report.skipped:
                context.log.info(
                    f"{file.relative_path}: {report.rows_accepted} accepted, "
                    f"{report.rows_rejected} rejected"
                )
                reports.append(report)
        total_rows = scalar(con, f"SELECT count(*) FROM {kind}")
        preview = con.execute(f"SELECT * FROM {kind} LIMIT {PREVIEW_ROWS}").df()

    reasons = Counter()
    for report in reports:
        reasons.update(report.rejected_by_reason)
    files_table = pd.DataFrame(
        [(r.path, r.rows_read, r.rows_accepted, r.rows_rejected) for r in reports],
        columns=["file", "rows_read", "rows_accepted", "rows_rejected"],
    )
    reasons_table = pd.DataFrame(sorted(reasons.items()), columns=["reason", "rows"])
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(total_rows),
            "new_files": len(reports),
            "rows_accepted": sum(r.rows_accepted for r in reports),
            "rows_rejected": sum(r.rows_rejected for r in reports),
            "retried_and_accepted": retried,
            "files": dg.MetadataValue.md(files_table.to_markdown(index=False)),
            "rejected_by_reason": dg.MetadataValue.md(reasons_table.to_markdown(index=False)),
            "preview": dg.MetadataValue.md(preview.to_markdown(index=False)),
        }
    )


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
        "User→artist ratings and/or play counts from `landing/ratings/`; the newest rating "
        "of a pair wins. Ratings that waited for an unknown user or artist are retried first."
    ),
)
def ratings(
    context: dg.AssetExecutionContext, home: MusicrecHome, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    return _ingest_kind(context, "ratings", home, duckdb)
