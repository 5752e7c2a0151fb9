"""Where tuning keeps its Optuna studies: one SQLite file beside MLflow's store
(``MUSICREC_HOME/optuna.db``), so that a later tuning starts from what worked before
(:class:`~musicrec_assets.evaluation.tuning.StudyRecord`) and ``optuna-dashboard`` can read
every study."""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

import optuna

from musicrec_assets.home import Home


def study_storage(home: Path) -> str:
    """The storage URL of ``home``'s studies, creating the file when missing.

    Created under an exclusive lock and renamed into place, as MLflow's store is
    (:func:`~musicrec_assets.tracking.registry.configure`): two processes creating Optuna's
    schema at once, or one killed half-way, would leave a file no run can open.
    """
    store = Home(home).optuna_db
    store.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{store}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        if not store.exists():
            for unfinished in store.parent.glob(f"{store.name}.*.part*"):
                unfinished.unlink()
            descriptor, building = tempfile.mkstemp(
                dir=store.parent, prefix=f"{store.name}.", suffix=".part"
            )
            os.close(descriptor)
            optuna.storages.RDBStorage(f"sqlite:///{building}").remove_session()
            os.replace(building, store)
    return f"sqlite:///{store}"
