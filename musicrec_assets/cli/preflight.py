"""What ``musicrec run`` checks before it starts a run, so that a run that cannot go well ends
in one clear line instead of a stack trace, and never ingests a file still being written."""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import yaml

from musicrec_assets.home import Home, check_sqlite
from musicrec_assets.warehouse import landing, published
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


def check_stores(home: Home, dagster_home: Path, say=print) -> None:
    """Every store of the home, checked before a run starts, so that a damaged one ends the
    command in one line that names it and says what to do (`DamagedStore`) instead of a step
    that fails later, or waits on it: the SQLite stores (`Home.sqlite_stores`) and the
    warehouse's two copies, one of which is made whole again from the other where it can be
    (`published.repair`)."""
    for store, remedy in home.sqlite_stores(dagster_home):
        check_sqlite(store, remedy)
    repaired = published.repair(home.warehouse, published.working_copy(home.warehouse), deep=True)
    if repaired:
        say(f"musicrec: {repaired}", flush=True)


# what the libraries say when the disk is full: Python's OSError, DuckDB, SQLite
_DISK_FULL = re.compile(r"no space left on device|database or disk is full|disk quota", re.I)
_DISK_IO = re.compile(r"disk I/O error", re.I)
# a path quoted in a message (Python's '…', DuckDB's "…")
_QUOTED_PATH = re.compile(r"""["'](/[^"']+)["']""")
# the file a copy was writing, in Python's message of a failed copy: '<source>' -> '<target>'
_COPY_TARGET = re.compile(r"""["']/[^"']+["'] -> ["'](/[^"']+)["']""")
# below this much free space, an I/O error that names no cause counts as a full disk
NEARLY_FULL_BYTES = 16 * 2**20


def is_disk_error(text: str) -> bool:
    """Whether an error's text says the disk is full, or names a disk I/O error."""
    return bool(_DISK_FULL.search(text) or _DISK_IO.search(text))


def disk_full(home: Home, messages: list[str]) -> str | None:
    """One line saying that the disk is full and where, when ``messages`` (an error's chain,
    or a failed run's step errors) say so, or name a disk I/O error (SQLite's word for a
    failed write) while the home's filesystem is all but full; else None."""
    text = "\n".join(messages)
    free = shutil.disk_usage(home.root).free if home.root.exists() else None
    full = _DISK_FULL.search(text) or (
        _DISK_IO.search(text) and free is not None and free < NEARLY_FULL_BYTES
    )
    if not full:
        return None
    paths = _COPY_TARGET.findall(text) + [
        path for path in _QUOTED_PATH.findall(text) if "/" in path[1:]
    ]
    where = f"writing {paths[0]}" if paths else f"writing under {home.root}"
    room = "" if free is None else f"; {free / 2**20:.1f} MiB free there now"
    return (
        f"disk full: no space left on the device {where}{room}. Free some space and run "
        "again: what the run had not committed was rolled back, and the next run takes it up"
    )


def error_chain(error: BaseException) -> list[str]:
    """The messages of ``error`` and of the errors it came from, an errno's name included."""
    messages, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        message = str(error)
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            message += " (no space left on device)"
            if error.filename:
                message += f" '{error.filename}'"
        messages.append(message)
        error = error.__cause__ or error.__context__
    return messages


def step_errors(events) -> list[tuple[str, str]]:
    """(class name, message) of the errors of a run's failed steps and of their causes."""
    errors = []
    for event in events:
        if not (event.is_step_failure or event.is_run_failure):
            continue
        data = event.step_failure_data if event.is_step_failure else event.event_specific_data
        error = getattr(data, "error", None)
        while error is not None:
            errors.append((error.cls_name or "", error.message))
            error = error.cause or error.context
    return errors


# the errors whose message names a cause the user can act on, with the exit status of each
NAMED_CAUSES = {"DamagedStore": 2, "SettingConflict": 1}


def run_failure(home: Home, events) -> tuple[str, int] | None:
    """The one line that names why a run failed, and the exit status, where its steps' errors
    tell a cause the user can act on: a damaged store (2), a setting the home refuses (1), a
    full disk (1); else None."""
    errors = step_errors(events)
    for cls_name, message in errors:
        if cls_name in NAMED_CAUSES:  # "<module>.<class name>: <the line>"
            line = message.strip().splitlines()[0].partition(f"{cls_name}: ")[2]
            return line, NAMED_CAUSES[cls_name]
    full = disk_full(home, [message for _, message in errors])
    return (full, 1) if full else None


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
    (`landing.ready_files`: not written to for `SETTLE_SECONDS`, or size and mtime unchanged
    between two looks), the files as found then: what the run is started for, to carry as its
    manifest (`landing.manifest`). Waits for files still being written; a clear error when one
    is still changing after ``wait_seconds``.

    A file not modified in the last `SETTLE_SECONDS` is complete at the first look, so a
    landing folder at rest costs no wait.
    """
    deadline = time.monotonic() + wait_seconds
    files = landing.scan(landing_dir)
    previous: dict[str, str] = {}
    announced = False
    while True:
        still = landing.ready_files(files, {}, previous).pending
        if not still:
            return files
        if time.monotonic() >= deadline:
            raise ValueError(
                f"{_named(still)} still being written after {wait_seconds:g} s: run "
                "again once complete (or write under a .part name and rename when done)"
            )
        if not announced:
            say(
                f"waiting for {_named(still)} to hold still "
                f"(written in the last {SETTLE_SECONDS:g} s)",
                flush=True,
            )
            announced = True
        time.sleep(SETTLE_SECONDS)
        previous = _stamps(files)
        files = landing.scan(landing_dir)


def _named(paths) -> str:
    """Landing paths in one line: a control character in a name (a newline, say) escaped as
    Python writes it, so a message stays one line."""
    return ", ".join(repr(path)[1:-1] for path in sorted(paths))


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
