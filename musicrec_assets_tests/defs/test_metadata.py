"""The metadata a person reads in the Dagster UI: every published table's schema with what its
columns mean, row counts, and small tables rather than markdown dumps."""

import json

import dagster as dg
import duckdb
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
    assert columns(comparison)[:3] == ["model", "ndcg_at_10", "rmse"]  # what decides, first
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


def columns(table: dg.TableMetadataValue) -> list[str]:
    return [column.name for column in table.schema.columns]


def test_tuning_page_shows_the_search_at_a_glance(pipeline_home):
    home, result = pipeline_home
    tuning = metadata(result, "als_tuning")
    # a row per model, its best CV score first and its choice in words
    assert columns(tuning["search"])[:3] == ["cv_score", "metric", "model"]
    searches = {record.data["model"]: record.data for record in tuning["search"].records}
    assert searches["rating"]["trials"] == 4 and searches["rating"]["metric"] == "rmse"
    assert searches["item_knn"]["chosen"] == "K=5 cosine"  # not an empty ALS row
    # what each search varied (FAST_SETTINGS: the rating model's rank and λ, and the blend
    # weight), not the settings fixed to one value
    settings = tuning["settings_searched"].records
    varied = {(record.data["model"], record.data["setting"]): record.data for record in settings}
    assert set(varied) == {
        ("rating", "rank"),
        ("rating", "regularization"),
        ("blend", "blend_weight"),
    }
    assert varied[("rating", "rank")]["tried"] == "4 – 8"
    assert varied[("rating", "rank")]["values"] == 2
    assert varied[("rating", "rank")]["chosen"] in {"4", "8"}
    # the best complete trials: score first, every model's settings named
    assert columns(tuning["top_trials"])[:3] == ["cv_score", "model", "settings"]
    settings_of = {
        record.data["model"]: record.data["settings"] for record in tuning["top_trials"].records
    }
    assert settings_of["item_knn"] == "K=5 cosine"
    assert settings_of["ranking"].startswith("rank=16 λ=100 α=10 rating")
    # the plot inline and linked to the same image in the tuning's MLflow run
    plot = tuning["search_by_setting"].value
    assert plot.startswith("![search_by_setting](data:image/png;base64,")
    link = tuning["search_by_setting_in_mlflow"].value
    run_id = tuning["mlflow_run_id"].value
    assert f"/runs/{run_id}/artifactPath/plots/search_by_setting.png?" in link
    assert link.endswith("workflowType=machine_learning")


def test_previews_show_names_not_ids(pipeline_home):
    home, result = pipeline_home
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        artists = {name for (name,) in con.execute("SELECT name FROM artists").fetchall()}
        users = {
            name
            for (name,) in con.execute(
                "SELECT concat_ws(' ', first_name, last_name) FROM users"
            ).fetchall()
        }
    expected = {
        "user_recommendations": ["user", "rank", "artist", "score", "predicted_rating"],
        "artist_top_users": ["artist", "rank", "user", "score"],
        "similar_artists": ["artist", "rank", "similar_artist", "similarity"],
    }
    for asset, shown in expected.items():
        preview = metadata(result, asset)["preview"]
        assert columns(preview)[: len(shown)] == shown, asset
        rows = [record.data for record in preview.records]
        assert {row["artist"] for row in rows} <= artists, asset
        if "user" in shown:
            assert {row["user"] for row in rows} <= users, asset
        score = "similarity" if asset == "similar_artists" else "score"
        assert all(row[score] == round(row[score], 3) for row in rows), asset


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
