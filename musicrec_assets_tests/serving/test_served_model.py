"""The registered MLflow model: ``predict`` on the loaded pyfunc, and the real HTTP server."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import duckdb
import mlflow
import pandas as pd
import pytest
from harness import free_port

from musicrec_assets.tracking import registry as tracking

CHAMPION_URI = f"models:/{tracking.REGISTERED_MODEL}@champion"


@pytest.fixture(scope="module")
def served(pipeline_home):
    home, _ = pipeline_home
    tracking.configure(home)
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        expected = con.execute(
            "SELECT user_id, artist_id FROM user_recommendations WHERE rank = 1 "
            "ORDER BY user_id LIMIT 1"
        ).fetchall()[0]
    return home, expected


def test_predict_known_user_and_new_listener(served):
    home, (user, top_artist) = served
    model = mlflow.pyfunc.load_model(CHAMPION_URI)
    requests = pd.DataFrame(
        [
            {"user_id": user, "ratings": None, "n": 3},
            {
                "user_id": None,
                "ratings": json.dumps([{"artist_id": top_artist, "rating": 5}]),
                "n": 4,
            },
        ]
    )
    answer = model.predict(requests)
    first = answer[answer.request == 0]
    assert list(first["rank"]) == [1, 2, 3] and first.iloc[0]["artist_id"] == top_artist
    assert first["artist_name"].notna().all()
    second = answer[answer.request == 1]
    assert len(second) == 4 and top_artist not in set(second["artist_id"])


def test_predict_rejects_unknown_user(served):
    model = mlflow.pyfunc.load_model(CHAMPION_URI)
    with pytest.raises(Exception, match="unknown user"):
        model.predict(pd.DataFrame([{"user_id": "nobody", "ratings": None}]))


def test_mlflow_models_serve_answers_over_http(served):
    home, (user, top_artist) = served
    port = free_port()
    bin_dir = Path(sys.executable).parent  # the server runs uvicorn from the same venv
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking.tracking_uri(home),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    mlflow_cli = str(bin_dir / "mlflow")
    server = subprocess.Popen(
        [
            mlflow_cli,
            "models",
            "serve",
            "-m",
            CHAMPION_URI,
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the server and its uvicorn workers, stopped together
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                assert server.poll() is None, "mlflow models serve exited"
                assert time.monotonic() < deadline, "server did not start in 120 s"
                time.sleep(1)
        records = [{"user_id": user, "n": 2}, {"artist_id": top_artist, "n": 3}]
        body = json.dumps({"dataframe_records": records}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            predictions = json.loads(response.read())["predictions"]
        listed = [p for p in predictions if p["request"] == 0]
        assert [p["rank"] for p in listed] == [1, 2]
        assert listed[0]["artist_id"] == top_artist
        # who to promote that artist to: three users, each named
        audience = [p for p in predictions if p["request"] == 1]
        assert [p["rank"] for p in audience] == [1, 2, 3]
        assert {p["artist_id"] for p in audience} == {top_artist}
        assert len({p["user_id"] for p in audience if p["user_id"]}) == 3
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a loaded machine: its workers end slowly
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
