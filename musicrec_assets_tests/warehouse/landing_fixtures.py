"""The ingest tests' fixtures; a test module takes them with
``pytest_plugins = ["landing_fixtures"]``."""

import pytest
from landing_helpers import warehouse


@pytest.fixture
def con():
    """An in-memory warehouse with the schema."""
    with warehouse() as connection:
        yield connection


@pytest.fixture
def landing_dir(tmp_path):
    return tmp_path / "landing"
