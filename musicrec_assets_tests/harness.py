"""What the tests share: the repository's paths, small worlds and settings, in-process runs,
the environment of a `dagster dev`, the `musicrec` command. Fixtures are in conftest.py."""

import json
import os
import shutil
import socket
import sys
from pathlib import Path

import dagster as dg

from musicrec_assets.datasets.synthetic import generate_world
from musicrec_assets.definitions import build_definitions
from musicrec_assets.defs.resources import ModelSettings

REPO_ROOT = Path(__file__).resolve().parents[1]
# the command line of this environment, for tests that run it as a user does
MUSICREC = str(Path(sys.executable).with_name("musicrec"))
SAMPLE_DATA = REPO_ROOT / "musicrec_assets" / "sample_data"
LASTFM_DIR = REPO_ROOT.parent / "shared" / "datasets" / "lastfm-hetrec2011-2k"

TRAINING_ASSETS = [
    dg.AssetKey(name)
    for name in (
        "users",
        "artists",
        "ratings",
        "rating_matrix",
        "evaluation_split",
        "als_tuning",
        "als_model",
    )
]
SERVING_ASSETS = [
    dg.AssetKey(name)
    for name in (
        "user_recommendations",
        "artist_top_users",
        "similar_artists",
        "user_factors",
        "artist_factors",
    )
]

# small grids and folds: the pipeline tests check wiring and behaviour, not model quality
FAST_CONFIG = {
    "ranks": [4, 8],
    "regularizations": [0.05, 0.1],
    "bias_regularizations": [10.0],
    # the ranking model has to beat item-kNN for the tables to be published: one point that
    # does, beside a weak item-kNN (K 5), on every small world the wiring tests draw
    "ranking_ranks": [16],
    "ranking_regularizations": [100.0],
    "ranking_alphas": [10.0],
    "ranking_confidences": ["rating"],
    "neighbours": [5],
    "similarities": ["cosine"],
    "iterations": 8,
    "n_folds": 2,
    "top_n": 5,
}
FAST_SETTINGS = ModelSettings(**FAST_CONFIG)
# the same for `musicrec run --config`, with one trial of each model: the tests of real
# processes need the steps to happen, not good models
TINY_SETTINGS = FAST_CONFIG | {"ranks": [4], "regularizations": [0.1], "iterations": 5}
TINY_RUN = {"resources": {"settings": {"config": TINY_SETTINGS}}}


def fast_settings(**changes) -> ModelSettings:
    """``FAST_SETTINGS`` with some of them changed."""
    return ModelSettings(**(FAST_CONFIG | changes))


def run_pipeline(home: Path, settings: ModelSettings = FAST_SETTINGS, selection=None):
    """Materialize the graph (or ``selection``) in-process on a temporary Dagster instance."""
    job = build_definitions(home, settings).resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        asset_selection=selection,
        raise_on_error=False,
    )


def small_world(seed: int = 7):
    return generate_world(seed=seed, n_users=120, n_artists=1200, n_ratings=7000)


def dagster_dev_env(home: Path, settings: dict = TINY_SETTINGS) -> dict[str, str]:
    """The environment of a `dagster dev` on ``home`` (its instance in ``home/dagster``, made
    here from the repository's dagster.yaml): sensors every 5 s, the schedule kept out, the
    daemon's runs with ``settings`` (but the default top N)."""
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    return {
        **os.environ,
        "MUSICREC_HOME": str(home),
        "DAGSTER_HOME": str(dagster_home),
        "MUSICREC_SENSOR_INTERVAL": "5",
        # the daily schedule (03:00 UTC) would start a run of its own if a test spans it
        "MUSICREC_RETRAIN_CRON": "0 0 1 1 *",
        # the daemon's runs: one point of each model, as the tests of real processes run
        "MUSICREC_SETTINGS": json.dumps(
            {name: value for name, value in settings.items() if name != "top_n"}
        ),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
