"""What ``musicrec run`` prints when it is done."""

from __future__ import annotations

from datetime import UTC, datetime

from musicrec_assets.home import Home
from musicrec_assets.warehouse.tables import connect, table_exists


def print_summary(
    home: Home, since: float, run_id: str, success: bool, model: dict | None = None
) -> None:
    """``model``: the ``als_model`` materialization's metadata, when this run trained one."""
    print(f"run {run_id}: {'succeeded' if success else 'FAILED (see the Dagster UI or logs)'}")
    if model:
        print(
            f"model musicrec-als v{model['model_version']} ({model['feedback']}, "
            f"{model['alias']}: {model['promotion']})"
        )
        for name in sorted(key for key in model if key.startswith(("test_", "baseline_"))):
            print(f"  {name}: {model[name]:.4f}")
    warehouse = home.warehouse
    if not warehouse.exists():
        return
    started = datetime.fromtimestamp(since, UTC).replace(tzinfo=None)
    with connect(warehouse) as con:
        files = con.execute(
            """SELECT path, rows_read, rows_accepted, rows_rejected FROM ingested_files
               WHERE ingested_at >= ? ORDER BY ingested_at""",
            [started],
        ).fetchall()
        print(f"files ingested: {len(files)}")
        for path, read, accepted, rejected in files:
            print(f"  {path}: {read} rows read, {accepted} accepted, {rejected} rejected")
        for table in ("users", "artists", "ratings", "rejected_rows"):
            if table_exists(con, table):
                count = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
                print(f"  table {table}: {count} rows")
    print(f"warehouse: {warehouse}")
