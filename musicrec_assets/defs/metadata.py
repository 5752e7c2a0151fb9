"""Metadata a person reads at a glance in the Dagster UI: table schemas, row counts, small
tables instead of markdown dumps."""

from __future__ import annotations

import dagster as dg
import duckdb
import numpy as np
import pandas as pd

from musicrec_assets.warehouse import catalog


def table_metadata(con: duckdb.DuckDBPyConnection, table: str, rows: int) -> dict:
    """``dagster/table_name``, ``dagster/column_schema`` (types and meanings) and
    ``dagster/row_count`` (``rows``, as its publisher counted them) of a warehouse table."""
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn(name, data_type.lower(), description=meaning or None)
            for name, data_type, meaning in catalog.columns(con, table)
        ]
    )
    return {
        "dagster/table_name": f"warehouse.{table}",
        "dagster/column_schema": schema,
        "dagster/row_count": rows,
    }


def names_not_ids(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each ``<x>_id`` column that has a ``<x>_name`` beside it shown as one
    column ``<x>``: the name, or the id where there is none. A UUID takes four lines of a
    Dagster table cell and tells a person nothing."""
    shown = frame.copy()
    for id_column in [c for c in frame.columns if c.endswith("_id")]:
        entity = id_column.removesuffix("_id")
        if f"{entity}_name" not in frame.columns:
            continue
        named = frame[f"{entity}_name"].fillna(frame[id_column])
        shown.insert(shown.columns.get_loc(id_column), entity, named)
        shown = shown.drop(columns=[id_column, f"{entity}_name"])
    return shown


def _column_type(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_integer_dtype(series):
        return "int"
    if pd.api.types.is_float_dtype(series):
        return "float"
    return "string"


def frame_table(frame: pd.DataFrame, digits: int = 4) -> dg.TableMetadataValue:
    """A small DataFrame as a Dagster table: floats rounded, missing values empty."""
    columns = [dg.TableColumn(str(name), _column_type(frame[name])) for name in frame.columns]
    records = [
        dg.TableRecord({str(name): _cell(value, digits) for name, value in row.items()})
        for row in frame.to_dict("records")
    ]
    return dg.MetadataValue.table(records, schema=dg.TableSchema(columns=columns))


def _cell(value, digits: int):
    if value is None or (isinstance(value, float | np.floating) and np.isnan(value)):
        return None  # shown empty
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, float | np.floating):
        return round(float(value), digits)
    if isinstance(value, int | np.integer):
        return int(value)
    return str(value)
