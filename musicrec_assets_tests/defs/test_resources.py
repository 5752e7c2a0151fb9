"""Settings are validated before they are used: choices are enums, numbers have bounds."""

import dagster as dg
import pytest
from pydantic import ValidationError

from musicrec_assets.backends import Backend
from musicrec_assets.definitions import build_definitions
from musicrec_assets.defs.resources import ModelSettings


@pytest.mark.parametrize(
    ("setting", "value"), [("backend", "hadoop"), ("feedback", "bogus")], ids=str
)
def test_an_unknown_choice_is_refused_by_run_config_validation(tmp_path, setting, value):
    """Nothing runs: Dagster rejects the run config, naming the setting (the launchpad shows
    the allowed values as a drop-down)."""
    job = build_definitions(tmp_path).resolve_implicit_global_asset_job_def()
    with pytest.raises(dg.DagsterInvalidConfigError, match=f"config:{setting} not in enum"):
        dg.validate_run_config(job, {"resources": {"settings": {"config": {setting: value}}}})
    assert not list(tmp_path.iterdir())


def test_choices_read_as_written_in_run_config():
    settings = ModelSettings(backend="spark", feedback="explicit")
    assert settings.backend == Backend.spark == "spark" and settings.feedback == "explicit"
    with pytest.raises(ValidationError, match="'local' or 'spark'"):
        ModelSettings(backend="hadoop")


@pytest.mark.parametrize(
    "bad",
    [{"test_share": 0.0}, {"test_share": 1.0}, {"n_folds": 1}, {"iterations": 0}, {"top_n": 0}],
    ids=str,
)
def test_numbers_out_of_bounds_are_refused(bad):
    with pytest.raises(ValidationError):
        ModelSettings(**bad)
