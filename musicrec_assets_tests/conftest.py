"""Fixtures shared by the tests; the helpers they use are in harness.py."""

import os
from pathlib import Path

import pytest
from harness import LASTFM_DIR, run_pipeline, small_world

from musicrec_assets.backends.spark.als import missing_spark_requirement, shared_spark_session
from musicrec_assets.datasets.synthetic import write_landing


@pytest.fixture(scope="session")
def lastfm_dir() -> Path:
    if not (LASTFM_DIR / "user_artists.dat").exists():
        pytest.skip(f"Last.fm HetRec 2011 data not found at {LASTFM_DIR} (CI provides ../shared)")
    return LASTFM_DIR


@pytest.fixture(scope="session")
def pipeline_home(tmp_path_factory):
    """One home with the whole graph materialized on a small synthetic world."""
    home = tmp_path_factory.mktemp("musicrec_home")
    write_landing(small_world(), home / "landing")
    previous = os.environ.get("MUSICREC_HOME")
    os.environ["MUSICREC_HOME"] = str(home)
    result = run_pipeline(home)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    yield home, result
    if previous is None:
        os.environ.pop("MUSICREC_HOME", None)
    else:
        os.environ["MUSICREC_HOME"] = previous


@pytest.fixture(scope="module")
def spark():
    """The process's one Spark session (SparkResource's defaults, so in-process runs on the
    Spark backend reuse it too): the JVM starts once per test process. Each module asks again,
    so that a session stopped by an earlier module (a run asking for other settings stops the
    running one) is started anew instead of handed out dead."""
    missing = missing_spark_requirement()
    if missing is not None:
        pytest.skip(missing)
    return shared_spark_session()
