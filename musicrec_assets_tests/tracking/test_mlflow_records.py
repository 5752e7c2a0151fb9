"""What a person finds in MLflow after a run: described runs and versions, a model signature,
the training data as a dataset, trials that last as long as they took."""

import json
from itertools import pairwise

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from musicrec_assets.tracking import copies, registry, runs


def test_the_registered_version_is_described_and_has_a_signature(pipeline_home):
    home, result = pipeline_home
    registry.configure(home)
    [materialization] = result.asset_materializations_for_node("als_model")
    number = materialization.metadata["model_version"].value
    version = MlflowClient().get_model_version(registry.REGISTERED_MODEL, number)
    assert "ALS on explicit feedback (local backend" in version.description
    assert version.tags["alias_at_registration"] == "champion"
    assert float(version.tags["rating_test_rmse"]) > 0 and version.tags["promotion"]
    assert float(version.tags["ranking_test_ndcg_at_10"]) > 0
    uri = materialization.metadata["model_uri"].value
    assert uri == f"models:/{registry.REGISTERED_MODEL}/{version.version}"
    signature = mlflow.models.get_model_info(uri).signature
    assert [c.name for c in signature.inputs.inputs] == ["user_id", "ratings", "artist_id", "n"]
    assert {"artist_id", "score", "predicted_rating"} <= {c.name for c in signature.outputs.inputs}
    # one version, both models: the ranking model where a single model used to be
    _, folder = registry.champion_files(home)
    files = {path.name for path in folder.iterdir()}
    assert {"factors.npz", "rating_factors.npz", "rating_factors.json", "seen.npz"} <= files


def run_of(result, node: str):
    """The MLflow run the fixture's run logged for ``node`` (other tests add runs later)."""
    [materialization] = result.asset_materializations_for_node(node)
    return MlflowClient().get_run(materialization.metadata["mlflow_run_id"].value)


def test_the_training_run_names_its_data_and_trials_take_their_time(pipeline_home):
    home, result = pipeline_home
    registry.configure(home)
    client = MlflowClient()
    experiment = client.get_experiment_by_name(registry.EXPERIMENT)
    training = run_of(result, "als_model")
    assert training.data.tags["mlflow.note.content"].startswith("ALS on explicit")
    [dataset] = training.inputs.dataset_inputs
    assert dataset.dataset.name == "ratings"
    assert dataset.dataset.digest == training.data.tags[registry.SPLIT_TAG][:32]
    assert (home / "warehouse.duckdb").as_uri() in dataset.dataset.source

    tuning = run_of(result, "als_tuning")
    trials = client.search_runs(
        [experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{tuning.info.run_id}'"
    )
    assert len(trials) == int(tuning.data.params["n_trials"])
    spans = sorted((t.info.start_time, t.info.end_time) for t in trials)
    fits = {t.info.run_id: t.data.metrics["cv/fit_seconds"] for t in trials}
    # each trial's run lasts at least as long as its folds' fits, and trials do not overlap
    assert all((t.info.end_time - t.info.start_time) / 1000 >= fits[t.info.run_id] for t in trials)
    assert all(end <= next_start for (_, end), (next_start, _) in pairwise(spans))


def test_runs_carry_their_plots_and_tables_and_the_experiment_a_view_of_them(pipeline_home):
    home, result = pipeline_home
    registry.configure(home)
    client = MlflowClient()
    tuning, training = run_of(result, "als_tuning"), run_of(result, "als_model")
    assert "plots/search_by_setting.png" in {
        artifact.path for artifact in client.list_artifacts(tuning.info.run_id, "plots")
    }
    assert "plots/scores_by_model.png" in {
        artifact.path for artifact in client.list_artifacts(training.info.run_id, "plots")
    }
    # models × metrics, rounded, the same numbers as the run's metrics
    table = pd.read_csv(
        mlflow.artifacts.download_artifacts(
            run_id=training.info.run_id, artifact_path=runs.METRICS_TABLE
        ),
        index_col="model",
    )
    assert {"ranking", "rating", "most_popular", "item_knn", "bias"} <= set(table.index)
    ndcg = training.data.metrics["test/ndcg_at_10/ranking"]
    assert table.loc["ranking", "ndcg_at_10"] == round(ndcg, 4)
    # the shared view's columns: metrics and tags the runs have, in MLflow's own notation
    experiment = client.get_experiment(training.info.experiment_id)
    saved = json.loads(experiment.tags[f"mlflow.sharedViewState.{runs.HEADLINE_VIEW}"])
    assert saved["name"] and saved["createdAt"] <= saved["updatedAt"]
    view = json.loads(saved["state"])
    logged = {f"metrics.`{name}`" for name in {**tuning.data.metrics, **training.data.metrics}}
    logged |= {f"tags.`{name}`" for name in training.data.tags}
    named = [column for column in view["selectedColumns"] if not column.startswith("attributes")]
    assert named and set(named) <= logged


def test_mlflow_addresses_open_the_classic_ml_view(monkeypatch):
    monkeypatch.setenv("MUSICREC_MLFLOW_UI", "https://mlflow.example.org/")
    assert runs.experiment_url("1") == (
        "https://mlflow.example.org/#/experiments/1/runs"
        f"?viewStateShareKey={runs.HEADLINE_VIEW}&workflowType=machine_learning"
    )
    assert runs.artifact_url("1", "abc", "plots/a.png") == (
        "https://mlflow.example.org/#/experiments/1/runs/abc/artifactPath/plots/a.png"
        "?workflowType=machine_learning"
    )


def test_run_links_point_at_the_configured_mlflow_ui(monkeypatch):
    in_ml_mode = "?workflowType=machine_learning"  # not MLflow 3's default GenAI view
    assert (
        registry.run_url("1", "abc")
        == f"http://127.0.0.1:5000/#/experiments/1/runs/abc{in_ml_mode}"
    )
    monkeypatch.setenv("MUSICREC_MLFLOW_UI", "https://mlflow.example.org/")
    assert (
        registry.run_url("1", "abc")
        == f"https://mlflow.example.org/#/experiments/1/runs/abc{in_ml_mode}"
    )


def test_only_the_newest_champion_copy_is_kept(tmp_path):
    for name in ("1-run-a", "2-run-b", "3-run-c", ".download-x"):
        (tmp_path / name).mkdir()
    copies.remove_older(tmp_path, current=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".download-x", "2-run-b", "3-run-c"]
