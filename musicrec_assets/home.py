"""``MUSICREC_HOME``: the one folder that holds everything a musicrec installation keeps.

Every path under it is named here and nowhere else::

    landing/{users,artists,ratings}/   files to ingest
    warehouse.duckdb                   the warehouse (ingested tables, recommendation tables)
    mlflow.db, mlartifacts/            the MLflow tracking store and its artifacts
    optuna.db                          the tuning studies (Optuna), one per model and tuning
    models/<version>-<run id>/         the champion's files, downloaded once per version
    spark/                             Parquet exchanged with Spark (backend: spark)
    dagster/                           the Dagster instance (runs, event log, sensor cursors)
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from musicrec_assets.warehouse.tables import DamagedStore, not_a_file

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Home:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).resolve())

    @classmethod
    def from_env(cls) -> Home:
        """``MUSICREC_HOME``, or ``.musicrec/`` at the repository root."""
        return cls(Path(os.environ.get("MUSICREC_HOME") or REPO_ROOT / ".musicrec"))

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def optuna_db(self) -> Path:
        return self.root / "optuna.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlartifacts"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def spark(self) -> Path:
        return self.root / "spark"

    @property
    def dagster(self) -> Path:
        return self.root / "dagster"

    def create_landing(self) -> None:
        """Create the landing folder with one subfolder per kind of file.

        Raises
        ------
        DamagedStore
            When something else than a folder stands where one of them goes.
        """
        # imported here: the command line's readers, which import this module, never ingest
        from musicrec_assets.warehouse.landing import KINDS

        for folder in (self.landing, *(self.landing / kind for kind in KINDS)):
            if folder.exists() and not folder.is_dir():
                raise DamagedStore(
                    f"{folder} is not a folder: move it aside, and put the files it should "
                    "hold into a folder of that name"
                )
            folder.mkdir(parents=True, exist_ok=True)

    def sqlite_stores(self, dagster_home: Path | None = None) -> list[tuple[Path, str]]:
        """The home's SQLite files, each with what to do when it is damaged: the MLflow
        store, the tuning studies, the Dagster instance's run history and schedules (those
        of ``dagster_home``, by default the home's own)."""
        dagster = dagster_home or self.dagster
        history = (
            f"move {dagster / 'history'} and {dagster / 'schedules'} aside to start a new run "
            "history (the warehouse, its ledger and the models are kept)"
        )
        return [
            (
                self.mlflow_db,
                "restore it (with mlartifacts/) from a backup, or move it aside to start a new "
                "store (its models are then gone; the new store numbers its models after the "
                "newest version the warehouse names)",
            ),
            (self.optuna_db, "move it aside: the next tuning starts its searches afresh"),
            (dagster / "history" / "runs.db", history),
            (dagster / "history" / "runs" / "index.db", history),
            (dagster / "schedules" / "schedules.db", history),
        ]


SQLITE_HEADER = b"SQLite format 3\x00"


def check_mlflow_store(home: Home) -> None:
    """A one-line error when ``home``'s MLflow store is damaged (:func:`check_sqlite`)."""
    check_sqlite(home.mlflow_db, dict(home.sqlite_stores())[home.mlflow_db])


def check_sqlite(store: Path, remedy: str) -> None:
    """A one-line error that names ``store`` and says what to do (``remedy``) when it is not
    a whole SQLite database: random bytes, a damaged page (sqlite's ``quick_check``:
    milliseconds for a store of thousands of runs). A missing or empty file is no error: it is
    made or filled when needed.

    Raises
    ------
    DamagedStore
    """
    if other := not_a_file(store):
        raise DamagedStore(f"{store} is damaged ({other}): {remedy}")
    try:
        with store.open("rb") as file:
            header = file.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return
    why = None
    if not header:
        # a process killed between creating the file and its first commit leaves it empty:
        # SQLite reads a zero-length file as an empty database, and its next writer fills it
        return
    if header != SQLITE_HEADER:
        why = "not a SQLite database"
    else:
        try:
            verdict = _quick_check(store)
        except sqlite3.DatabaseError as error:
            verdict = "ok" if "locked" in str(error) else str(error)  # locked: busy, whole
        if verdict != "ok":
            why = f"sqlite: {verdict}"
    if why is not None:
        raise DamagedStore(f"{store} is damaged ({why}): {remedy}")


def _quick_check(store: Path) -> str:
    try:
        return _pragma_quick_check(store, "ro")
    except sqlite3.OperationalError as error:
        if "readonly" not in str(error):
            raise
        # SQLITE_READONLY_ROLLBACK: a writer killed mid-commit left its journal, which only
        # a writable connection rolls back, as the store's next writer would; a read-only
        # home's store stays as it is for its writer to recover
        if not os.access(store.parent, os.W_OK):
            return "ok"
        return _pragma_quick_check(store, "rw")


def _pragma_quick_check(store: Path, mode: str) -> str:
    uri = f"{store.as_uri()}?mode={mode}"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5)) as db:
        return db.execute("PRAGMA quick_check(1)").fetchone()[0]
