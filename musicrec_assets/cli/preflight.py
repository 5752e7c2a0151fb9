"""What ``musicrec run`` checks before it starts a run, so that a run that cannot go well ends
in one clear line instead of a stack trace, and never ingests a file still being written."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import yaml

from musicrec_assets.home import Home
from musicrec_assets.warehouse import landing
from musicrec_assets.warehouse.tables import WarehouseBusy, connect, scalar, table_exists

SETTLE_SECONDS = landing.SETTLE_SECONDS


def require_writable(home: Home, dagster_home: Path) -> None:
    """A clear error when the home (or the Dagster instance in it) cannot be written."""
    folders = [home.root, dagster_home]
    files = [home.warehouse, home.mlflow_db]
    if dagster_home.is_dir():
        databases = list(dagster_home.rglob("*.db"))
        files += databases
        folders += sorted({database.parent for database in databases})
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as error:
            raise _not_writable(folder, error.strerror) from error
    for file in files:
        if file.exists() and not os.access(file, os.W_OK):
            raise _not_writable(file, "read-only")


def _not_writable(path: Path, why: str | None) -> PermissionError:
    return PermissionError(
        f"cannot write {path} ({why}): `musicrec run` keeps the warehouse, the MLflow store "
        "and the Dagster instance in MUSICREC_HOME, which must be writable"
    )


def require_ratings(home: Home) -> None:
    """A clear error when there is nothing to train on: no ratings file in the landing folder
    and none ingested before."""
    if any(file.kind == "ratings" for file in landing.scan(home.landing)):
        return
    if home.warehouse.exists():
        try:
            with connect(home.warehouse, read_only=True) as con:
                if table_exists(con, "ratings") and scalar(con, "SELECT count(*) FROM ratings"):
                    return
        except WarehouseBusy:
            return  # a run is writing it: that run has something to train on, so will we
    raise ValueError(
        f"nothing to train on: no ratings in {home.landing / 'ratings'} and none ingested "
        f"before; drop JSON files into {home.landing} first (`musicrec sample --out "
        f"{home.landing}` writes a synthetic set)"
    )


def wait_for_writers(
    landing_dir: Path, wait_seconds: float, say=print
) -> list[landing.LandingFile]:
    """Once every file in the landing folder is complete by the landing sensor's rule
    (`landing.ready_files`: size and mtime unchanged between two looks), the files as found
    then: what the run is started for, to carry as its manifest (`landing.manifest`). Waits
    for files still being written; a clear error when one is still changing after
    ``wait_seconds``.

    A file not modified in the last `SETTLE_SECONDS` counts as looked at once already, so a
    landing folder at rest costs no wait.
    """
    deadline = time.monotonic() + wait_seconds
    files = landing.scan(landing_dir)
    settled_before = time.time_ns() - int(SETTLE_SECONDS * 1e9)
    previous = _stamps([file for file in files if file.mtime_ns < settled_before])
    announced = False
    while True:
        still = landing.ready_files(files, {}, previous).pending
        if not still:
            return files
        if time.monotonic() >= deadline:
            raise ValueError(
                f"{', '.join(sorted(still))} still being written after {wait_seconds:g} s: run "
                "again once complete (or write under a .part name and rename when done)"
            )
        if not announced:
            say(
                f"waiting for {', '.join(sorted(still))} to hold still "
                f"(written in the last {SETTLE_SECONDS:g} s)",
                flush=True,
            )
            announced = True
        time.sleep(SETTLE_SECONDS)
        previous = _stamps(files)
        files = landing.scan(landing_dir)


def _stamps(files: list[landing.LandingFile]) -> dict[str, str]:
    """One look at ``files``, as `landing.ready_files` remembers it for the next look."""
    return landing.ready_files(files, {}, {}).pending


def run_config(
    config_file: str | None,
    log_level: str = "INFO",
    resource_config: dict[str, dict] | None = None,
) -> dict:
    """Dagster run config for ``musicrec run``: the console logger at ``log_level``, then the
    YAML file's own (e.g. ``resources: {settings: {config: {iterations: 8}}}``) on top, then
    ``resource_config`` (what the command's flags say, e.g. ``{"spark": {"master": …}}``) over
    the file's config of those resources."""
    config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    if config_file:
        try:
            loaded = yaml.safe_load(Path(config_file).read_text()) or {}
        except yaml.YAMLError as error:
            raise ValueError(f"{config_file} is not valid YAML: {error}") from error
        if not isinstance(loaded, dict):
            raise ValueError(f"{config_file} must hold a mapping of Dagster run config")
        config |= loaded
    if resource_config:
        resources = config.setdefault("resources", {})
        if not isinstance(resources, dict) or not all(
            isinstance(resources.get(name) or {}, dict) for name in resource_config
        ):
            raise ValueError(f"{config_file}: resources and each resource must be mappings")
        for name, values in resource_config.items():
            resource = resources.get(name) or {}
            resources[name] = resource | {"config": (resource.get("config") or {}) | values}
    return config
