"""`musicrec run --backend spark` on a real standalone cluster: a master and two workers on
127.0.0.1, started by the script behind `make spark-cluster`; and how `run`'s flags become run
config."""

import argparse
import json
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import duckdb
import pytest
import yaml
from conftest import small_world

from musicrec_assets.cli import preflight
from musicrec_assets.cli.main import _resource_flags, main
from musicrec_assets.cli.spark_cluster import process_running
from musicrec_assets.datasets.synthetic import write_landing
from musicrec_assets.model.spark_als import missing_spark_requirement

MUSICREC = str(Path(sys.executable).with_name("musicrec"))
REPO_ROOT = Path(__file__).resolve().parents[2]
CLUSTER = [sys.executable, "-m", "musicrec_assets.cli.spark_cluster"]
# One trial, so as few Spark fits as can be. The test is about where the fit runs, not how good
# the model is, yet the gate has to pass for the tables to be published: item-kNN, the
# baseline a small ALS loses to here, gets its weak cosine setting only.
SMALL_RUN = {
    "resources": {
        "settings": {
            "config": {
                "ranks": [4],
                "regularizations": [0.05],
                "alphas": [1.0],
                "confidences": ["log1p"],
                "neighbours": [100],
                "similarities": ["cosine"],
                "iterations": 3,
                "n_folds": 2,
                "top_n": 5,
            }
        },
        "spark": {"config": {"driver_memory": "1g"}},
    }
}


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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def master_status(webui_port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{webui_port}/json/", timeout=5) as answer:
        return json.load(answer)


def play_counts_only(landing: Path) -> None:
    """Drop the ratings' `rating`: on play counts Spark's model beats the baselines, whereas on
    ratings Spark's ALS, which has no biases, loses to the bias baseline and the gate keeps the
    recommendation tables unpublished."""
    ratings = landing / "ratings" / "ratings.jsonl"
    records = [json.loads(line) for line in ratings.read_text().splitlines()]
    for record in records:
        del record["rating"]
    ratings.write_text("".join(json.dumps(record) + "\n" for record in records))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, request):
    """A home with a small synthetic world in its landing folder and a two-worker cluster,
    stopped at the end whatever happened."""
    home = tmp_path_factory.mktemp("spark_cluster_home")
    write_landing(small_world(), home / "landing")
    play_counts_only(home / "landing")
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


@pytest.mark.slow
@pytest.mark.skipif(
    missing_spark_requirement() is not None, reason=str(missing_spark_requirement())
)
def test_run_trains_on_a_standalone_cluster(cluster, tmp_path):
    home, start, port, webui_port = cluster
    master_url = f"spark://127.0.0.1:{port}"
    pids = {pid_file.name: pid_file.read_text() for pid_file in home.glob("spark/cluster/*.pid")}
    assert sorted(pids) == ["master.pid", "worker-1.pid", "worker-2.pid"]
    assert [worker["state"] for worker in master_status(webui_port)["workers"]] == ["ALIVE"] * 2

    again = subprocess.run(start, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "already running: " + master_url in again.stdout
    assert {f.name: f.read_text() for f in home.glob("spark/cluster/*.pid")} == pids

    config = tmp_path / "small.yaml"
    config.write_text(yaml.safe_dump(SMALL_RUN))
    command = [MUSICREC, "run", "--home", str(home), "--backend", "spark"]
    command += ["--spark-master", master_url, "--config", str(config)]
    run = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=480)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        for table in ("user_recommendations", "artist_top_users", "similar_artists"):
            assert con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0, table
        counts = con.execute("SELECT count(*), count(DISTINCT user_id) FROM user_recommendations")
        assert counts.fetchone() == (120 * 5, 120)
    # it ran on the cluster, not in local mode: the master saw the runs' applications end
    status = master_status(webui_port)
    assert status["activeapps"] == []
    assert status["completedapps"], "no application ran on the cluster"
    assert {(app["name"], app["state"]) for app in status["completedapps"]} == {
        ("musicrec", "FINISHED")
    }
