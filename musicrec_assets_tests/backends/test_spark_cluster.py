"""`musicrec run --backend spark` on a real standalone cluster: a master and two workers on
127.0.0.1, started by the script behind `make spark-cluster`; and how `run`'s flags become run
config.

One whole-graph run on the cluster, on Last.fm-2k's play counts (with its tags): it shows the
graph's Spark steps run as applications of a real cluster and publish what the local backend
publishes. What Spark computes is checked step by step without a cluster, more cheaply: the
backend contract (test_backend_contract.py) runs every step of the seam on ratings, the rating
model with biases and the blend among them, against the local backend; test_spark_als.py holds
the fits' parity tests."""

import argparse
import dataclasses
import json
import sqlite3
import subprocess
import sys
import urllib.request
from contextlib import closing
from pathlib import Path

import duckdb
import pytest
import yaml
from harness import MUSICREC, REPO_ROOT, free_port

from musicrec_assets.backends.spark.als import missing_spark_requirement
from musicrec_assets.backends.spark.cluster import process_running
from musicrec_assets.cli import preflight
from musicrec_assets.cli.main import _resource_flags, main
from musicrec_assets.datasets.lastfm import import_lastfm
from musicrec_assets.evaluation.metrics import evaluate
from musicrec_assets.model.fitters import fit_local, ranking_base_params
from musicrec_assets.warehouse.interactions import load_split

CLUSTER = [sys.executable, "-m", "musicrec_assets.backends.spark.cluster"]
# One trial of the ranking model on each backend, each with its own λ: Spark scales λ by each
# row's count, implicit does not (backends/spark/als.py: λ_spark ≈ λ_implicit · n_users / nnz,
# 1/48 on Last.fm-2k)
SETTINGS = {
    "iterations": 10,
    "n_folds": 2,
    "top_n": 10,
    "neighbours": [100],
    "similarities": ["cosine"],
    "ranks": [32],
    "alphas": [1.0],
    "confidences": ["log1p"],
}
REGULARIZATION = {"local": 30.0, "spark": 0.6}


def run_config(backend: str) -> dict:
    """The run config of one backend, as `musicrec run --config` reads it."""
    settings = SETTINGS | {"regularizations": [REGULARIZATION[backend]]}
    resources = {"settings": {"config": settings}}
    if backend == "spark":
        resources["spark"] = {"config": {"driver_memory": "1g"}}
    return {"resources": resources}


def test_run_flags_become_run_config_over_the_file(tmp_path):
    config = tmp_path / "run.yaml"
    file_settings = {"backend": "local", "iterations": 8}
    config.write_text(yaml.safe_dump({"resources": {"settings": {"config": file_settings}}}))
    # --spark-master alone implies --backend spark
    flags = _resource_flags(argparse.Namespace(backend=None, spark_master="spark://127.0.0.1:7077"))

    resources = preflight.run_config(str(config), resource_config=flags)["resources"]

    assert resources["settings"] == {"config": {"backend": "spark", "iterations": 8}}
    assert resources["spark"] == {"config": {"master": "spark://127.0.0.1:7077"}}


def test_spark_master_cannot_go_with_the_local_backend(capsys):
    argv = ["run", "--backend", "local", "--spark-master", "spark://127.0.0.1:7077"]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "--spark-master" in capsys.readouterr().err


def master_status(webui_port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{webui_port}/json/", timeout=5) as answer:
        return json.load(answer)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, request):
    """A two-worker cluster on free loopback ports, its files in a home of its own, stopped at
    the end whatever happened."""
    home = tmp_path_factory.mktemp("spark_cluster_home")
    port, webui_port = free_port(), free_port()
    start = [*CLUSTER, "--home", str(home), "start", "--workers", "2"]
    start += ["--port", str(port), "--webui-port", str(webui_port)]
    pid_files = home / "spark" / "cluster"

    def stop():
        pids = [int(pid_file.read_text()) for pid_file in pid_files.glob("*.pid")]
        subprocess.run([*CLUSTER, "--home", str(home), "stop"], cwd=REPO_ROOT, check=True)
        assert not any(map(process_running, pids)), "the cluster's processes outlived `stop`"

    request.addfinalizer(stop)  # before the start: a half-started cluster is stopped too
    started = subprocess.run(start, cwd=REPO_ROOT, capture_output=True, text=True, timeout=180)
    assert started.returncode == 0, started.stdout + started.stderr
    return home, start, port, webui_port


def run_on_cluster(home: Path, master_url: str) -> None:
    config = home / "run.yaml"
    config.write_text(yaml.safe_dump(run_config("spark")))
    command = [MUSICREC, "run", "--home", str(home), "--backend", "spark"]
    command += ["--spark-master", master_url, "--config", str(config)]
    run = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]


def published_scores(home: Path) -> dict[str, dict[str, float]]:
    """``model_metrics`` of the newest version: {model: {metric: value}}."""
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT model, metric, value FROM model_metrics "
            "WHERE model_version = (SELECT max(model_version::INT)::VARCHAR FROM model_metrics)"
        ).fetchall()
    scores: dict[str, dict[str, float]] = {}
    for model, metric, value in rows:
        scores.setdefault(model, {})[metric] = value
    return scores


def run_records(home: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The MLflow tags and params of the newest version's run, read from the home's store (its
    own file: this process's MLflow stays pointed where it was)."""
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        [(run_id,)] = con.execute(
            "SELECT DISTINCT mlflow_run_id FROM model_metrics "
            "WHERE model_version = (SELECT max(model_version::INT)::VARCHAR FROM model_metrics)"
        ).fetchall()
    with closing(sqlite3.connect(home / "mlflow.db")) as store:
        tags = dict(store.execute("SELECT key, value FROM tags WHERE run_uuid = ?", [run_id]))
        params = dict(store.execute("SELECT key, value FROM params WHERE run_uuid = ?", [run_id]))
    return tags, params


def local_ranking_score_on_the_same_split(home: Path) -> float:
    """NDCG@10 of the local backend's ranking model, with the local λ, fitted and scored on the
    split the Spark run published: the two backends compared on the same held-out pairs."""
    settings = run_config("local")["resources"]["settings"]["config"]
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        train, test = load_split(con, "implicit")
    ranking = dataclasses.replace(
        ranking_base_params("implicit", settings["iterations"], 42),
        rank=settings["ranks"][0],
        regularization=settings["regularizations"][0],
        alpha=settings["alphas"][0],
        confidence=settings["confidences"][0],
    )
    return evaluate(fit_local(train, ranking), train, test, "implicit")["ndcg_at_10"]


@pytest.mark.slow
@pytest.mark.skipif(
    missing_spark_requirement() is not None, reason=str(missing_spark_requirement())
)
def test_the_cluster_starts_once_and_lists_its_workers(cluster):
    home, start, port, webui_port = cluster
    pids = {pid_file.name: pid_file.read_text() for pid_file in home.glob("spark/cluster/*.pid")}
    assert sorted(pids) == ["master.pid", "worker-1.pid", "worker-2.pid"]
    assert [worker["state"] for worker in master_status(webui_port)["workers"]] == ["ALIVE"] * 2

    again = subprocess.run(start, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and f"already running: spark://127.0.0.1:{port}" in again.stdout
    assert {f.name: f.read_text() for f in home.glob("spark/cluster/*.pid")} == pids


@pytest.mark.slow
@pytest.mark.skipif(
    missing_spark_requirement() is not None, reason=str(missing_spark_requirement())
)
def test_the_whole_graph_runs_on_the_cluster_and_agrees_with_the_local_backend(
    cluster, lastfm_dir, tmp_path
):
    _, _, port, webui_port = cluster
    import_lastfm(lastfm_dir, tmp_path / "landing")
    finished_before = len(master_status(webui_port)["completedapps"])

    run_on_cluster(tmp_path, f"spark://127.0.0.1:{port}")

    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        users = con.execute("SELECT count(*) FROM user_index").fetchone()[0]
        counts = con.execute("SELECT count(*), count(DISTINCT user_id) FROM user_recommendations")
        assert counts.fetchone() == (users * 10, users)
        for table in ("artist_top_users", "similar_artists", "user_factors", "artist_factors"):
            assert con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0, table
        versions = con.execute("SELECT DISTINCT model_version FROM user_recommendations")
        assert versions.fetchall() == [("1",)]
    # it ran on the cluster, not in local mode: the master saw the run's applications end
    status = master_status(webui_port)
    assert status["activeapps"] == []
    assert len(status["completedapps"]) > finished_before, "no application ran on the cluster"
    apps = {(app["name"], app["state"]) for app in status["completedapps"]}
    assert apps == {("musicrec", "FINISHED")}
    # the version says it was trained on Spark
    tags, _ = run_records(tmp_path)
    assert tags["backend"] == "spark"

    spark = published_scores(tmp_path)
    assert spark["ranking"]["ndcg_at_10"] > spark["most_popular"]["ndcg_at_10"]
    # the tolerance of test_spark_als.py's parity tests
    local = local_ranking_score_on_the_same_split(tmp_path)
    assert spark["ranking"]["ndcg_at_10"] == pytest.approx(local, rel=0.1)
