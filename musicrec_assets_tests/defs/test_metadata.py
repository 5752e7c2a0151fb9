"""The metadata a person reads in the Dagster UI: every published table's schema with what its
columns mean, row counts, and small tables rather than markdown dumps."""

import json

import dagster as dg
import pytest
from harness import run_pipeline, small_world

from musicrec_assets.datasets.synthetic import write_landing
from musicrec_assets.warehouse.catalog import COLUMNS

# asset: the warehouse table it publishes
TABLE_OF = {
    "users": "users",
    "artists": "artists",
    "ratings": "ratings",
    "evaluation_split": "evaluation_split",
    "als_tuning": "tuning_trials",
    "user_recommendations": "user_recommendations",
    "artist_top_users": "artist_top_users",
    "similar_artists": "similar_artists",
    "user_factors": "user_factors",
    "artist_factors": "artist_factors",
}


def metadata(result, asset: str) -> dict:
    [materialization] = [
        event.materialization
        for event in result.get_asset_materialization_events()
        if event.asset_key == dg.AssetKey(asset)
    ]
    return materialization.metadata


@pytest.mark.parametrize("asset", sorted(TABLE_OF))
def test_published_tables_carry_their_schema_and_row_count(pipeline_home, asset):
    _, result = pipeline_home
    values = metadata(result, asset)
    table = TABLE_OF[asset]
    schema = values["dagster/column_schema"].schema
    assert {c.name for c in schema.columns} == set(COLUMNS[table])
    assert all(c.description for c in schema.columns)
    assert values["dagster/row_count"].value > 0
    assert values["dagster/table_name"].value == f"warehouse.{table}"


def test_model_page_shows_tables_not_markdown(pipeline_home):
    _, result = pipeline_home
    model = metadata(result, "als_model")
    comparison = model["metrics_by_model"]
    assert isinstance(comparison, dg.TableMetadataValue)
    rows = {record.data["model"]: record.data for record in comparison.records}
    # and the ranking model alone where the lists blend in the predicted rating
    assert set(rows) - {"ranking_alone"} == {
        "ranking",
        "rating",
        "global_mean",
        "bias",
        "most_popular",
        "item_knn",
    }
    assert rows["rating"]["rmse"] == round(rows["rating"]["rmse"], 4)
    assert rows["most_popular"]["rmse"] is None  # popularity predicts no ratings
    assert rows["ranking"]["rmse"] is None  # nor does the ranking model
    # a handful of headline numbers, rounded, not one key per model and metric
    assert len(model) < 25 and not any(key.startswith("baseline_") for key in model)
    assert model["ndcg_at_10"].value == rows["ranking"]["ndcg_at_10"]
    assert model["rmse"].value == rows["rating"]["rmse"]
    # the rating model's params leave out what only the ranking model uses
    params = model["params"].value
    assert {"alpha", "confidence"}.isdisjoint(params["rating"])
    assert {"alpha", "confidence"} <= set(params["ranking"])
    assert model["model_uri"].value.startswith("models:/musicrec-als/")

    tuning = metadata(result, "als_tuning")
    top = tuning["top_trials"]
    assert isinstance(top, dg.TableMetadataValue)
    chosen = [record.data for record in top.records if record.data["chosen"] is True]
    chosen_models = [trial["model"] for trial in chosen]  # one chosen trial per model
    assert {"ranking", "rating"} <= set(chosen_models) and len(chosen_models) == len(
        set(chosen_models)
    )


def test_ingest_shows_the_rows_this_run_took_and_what_it_rejected(tmp_path):
    world = small_world(seed=4)
    write_landing(world, tmp_path / "landing")
    ingest = [dg.AssetKey(kind) for kind in ("users", "artists", "ratings")]
    assert run_pipeline(tmp_path, selection=ingest).success
    late = tmp_path / "landing" / "ratings" / "late.jsonl"
    user, artist = world.ratings.user_id.iloc[0], world.artists.id.iloc[-1]
    late.write_text(
        json.dumps({"user_id": user, "artist_id": artist, "rating": 4.5, "timestamp": 2e9})
        + "\n"
        + '{"user_id": "x", "rating": "loud"}\n'
    )
    values = metadata(run_pipeline(tmp_path, selection=ingest), "ratings")

    [taken] = values["preview"].records  # the run's own row, not the table's first
    assert (taken.data["artist_id"], taken.data["source_file"]) == (artist, "ratings/late.jsonl")
    [rejected] = values["rejected_preview"].records
    assert rejected.data["raw"] == '{"user_id": "x", "rating": "loud"}'
    assert rejected.data["record_no"] == 2 and rejected.data["reason"]
    reasons = {r.data["reason"]: r.data["rows"] for r in values["rejected_by_reason"].records}
    assert sum(reasons.values()) == 1
    # nothing rejected, no files new: no empty tables, only the counts
    users = metadata(run_pipeline(tmp_path, selection=ingest), "users")
    assert {"files", "preview", "rejected_by_reason", "failures"}.isdisjoint(users)
    assert users["new_files"].value == 0
