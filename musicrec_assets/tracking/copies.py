"""The home's downloaded copies of registered model versions, ``models/<version>-<run id>/``:
recorded when downloaded whole, told damaged, set aside, and found again without MLflow.

A version's files never change once registered, and a version number names one model in a home
(a new MLflow store reserves the numbers the warehouse names), so a reader that knows a
version and its run from the warehouse (``model_metrics``) loads its copy without importing
MLflow, which takes longer than the rest of the answer (:func:`whole_copy`)."""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

from musicrec_assets.home import Home


def folder_of(home: Path, version: str, run_id: str) -> Path:
    """Where ``version`` (logged by the MLflow run ``run_id``) is downloaded in ``home``: the
    run id tells a version of a recreated store apart."""
    return Home(home).models / f"{version}-{run_id}"


def whole_copy(home: Path, version: str, run_id: str) -> Path | None:
    """``version``'s copy, if one was downloaded and is whole; else None (the registry
    downloads it, :func:`musicrec_assets.tracking.registry.champion_files`)."""
    folder = folder_of(home, version, run_id)
    if not folder.is_dir() or not recorded_files(folder) or damaged(folder):
        return None
    return folder


# beside a downloaded copy: each file's size and mtime when it was downloaded whole
SIZES_FILE = ".musicrec-sizes.json"


def write_sizes(folder: Path) -> None:
    stamps = {
        path.name: [path.stat().st_size, path.stat().st_mtime_ns]
        for path in folder.iterdir()
        if path.is_file()
    }
    (folder / SIZES_FILE).write_text(json.dumps(stamps, sort_keys=True))


def recorded_files(folder: Path) -> dict[str, list[int]]:
    """Each file's ``[size, mtime_ns]`` as downloaded, from the copy's sizes file; empty for a
    copy from before it (or from before it kept the mtime: a write that keeps the size moves
    the mtime, a chmod of a read-only home does not)."""
    try:
        recorded = json.loads((folder / SIZES_FILE).read_text())
    except (OSError, ValueError):
        return {}
    stamped = isinstance(recorded, dict) and all(
        isinstance(stamp, list) for stamp in recorded.values()
    )
    return recorded if stamped else {}


def damaged(folder: Path, written: bool = True) -> str | None:
    """What is wrong with a downloaded copy of a version's files, or None: not a folder, a
    file gone or of another size or mtime than when it was downloaded (``written``: its sizes
    file says), or an ``.npz`` that is not a whole zip (read to its end: every entry's CRC
    checked)."""
    if not folder.is_dir():
        return f"{folder} is not a folder" if folder.exists() else f"{folder} is missing"
    recorded = recorded_files(folder) if written else {}
    for name, (size, mtime_ns) in recorded.items():
        path = folder / name
        if not path.is_file() or (path.stat().st_size, path.stat().st_mtime_ns) != (
            size,
            mtime_ns,
        ):
            return f"{path} is cut short or changed"
    for path in sorted(folder.glob("*.npz")):
        if path.name in recorded:
            continue  # whole when downloaded, and unchanged since
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
        except (OSError, zipfile.BadZipFile, EOFError) as error:
            return f"{path} is not a whole archive ({error})"
        if bad is not None:
            return f"{path} is damaged ({bad})"
    return None


def remove_older(models: Path, current: int) -> None:
    """Delete downloaded copies of versions older than ``current`` (a newer champion that
    another reader fetched meanwhile stays)."""
    for copy in models.iterdir():
        number = copy.name.partition("-")[0]
        if number.isdigit() and int(number) < current:
            shutil.rmtree(copy, ignore_errors=True)


def discard(folder: Path) -> None:
    """Remove a damaged copy (a folder, or whatever stands in its place), after moving it out
    of the way at once: a reader never loads a copy half removed."""
    aside = folder.with_name(f".damaged-{folder.name}-{os.getpid()}")
    try:
        os.rename(folder, aside)
    except FileNotFoundError:
        return  # another reader set it aside first
    if aside.is_dir() and not aside.is_symlink():
        shutil.rmtree(aside, ignore_errors=True)
    else:
        aside.unlink(missing_ok=True)


# what loading a copy changed in a way its sizes and mtimes miss raises (numpy's and zipfile's
# archives, JSON, Parquet: pyarrow's errors are ValueError or OSError)
UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)
