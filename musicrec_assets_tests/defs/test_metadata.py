"""The metadata a person reads in the Dagster UI: every published table's schema with what its
columns mean, row counts, and small tables rather than markdown dumps."""

import dagster as dg
import pytest

from musicrec_assets.warehouse.catalog import COLUMNS

TABLE_OF = {"evaluation_split": "evaluation_split", "als_tuning": "tuning_trials"}


def metadata(result, node: str) -> dict:
    [materialization] = result.asset_materializations_for_node(node)
    return materialization.metadata


@pytest.mark.parametrize("node", sorted(TABLE_OF))
def test_published_tables_carry_their_schema_and_row_count(pipeline_home, node):
    _, result = pipeline_home
    values = metadata(result, node)
    table = TABLE_OF[node]
    schema = values["dagster/column_schema"].schema
    assert [c.name for c in schema.columns] == list(COLUMNS[table])
    assert all(c.description for c in schema.columns)
    assert values["dagster/row_count"].value > 0
    assert values["dagster/table_name"].value == f"warehouse.{table}"


def test_model_page_shows_tables_not_markdown(pipeline_home):
    _, result = pipeline_home
    model = metadata(result, "als_model")
    comparison = model["metrics_by_model"]
    assert isinstance(comparison, dg.TableMetadataValue)
    rows = {record.data["model"]: record.data for record in comparison.records}
    assert set(rows) == {"als", "global_mean", "bias", "most_popular"}
    assert rows["als"]["rmse"] == round(rows["als"]["rmse"], 4)
    assert rows["most_popular"]["rmse"] is None  # popularity predicts no ratings
    # an explicit model's params leave out what only play counts use
    assert {"alpha", "confidence"}.isdisjoint(model["params"].value)
    assert model["model_uri"].value.startswith("models:/musicrec-als/")

    tuning = metadata(result, "als_tuning")
    top = tuning["top_trials"]
    assert isinstance(top, dg.TableMetadataValue)
    assert {"alpha", "confidence"}.isdisjoint(c.name for c in top.schema.columns)
    assert sum(record.data["chosen"] is True for record in top.records) == 1
