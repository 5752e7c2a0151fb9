"""A copy of a used home (the session's `pipeline_home`) that a test may damage: its MLflow
store's paths point at the copy's own artifacts, so nothing the test does reaches the original."""

import contextlib
import shutil
import sqlite3
from pathlib import Path

import duckdb


def copy_home(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.lock"))
    store = target / "mlflow.db"
    if store.exists():
        with contextlib.closing(sqlite3.connect(store)) as db:
            tables = [
                name
                for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            ]
            for table in tables:
                for column in db.execute(f'PRAGMA table_info("{table}")').fetchall():
                    if column[2].upper().startswith(("VARCHAR", "TEXT")):
                        db.execute(
                            f'UPDATE "{table}" SET "{column[1]}" = replace("{column[1]}", ?, ?) '
                            f'WHERE instr("{column[1]}", ?) > 0',
                            [str(source), str(target), str(source)],
                        )
            db.commit()
    return target


def a_user(home: Path) -> str:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute("SELECT min(user_id) FROM user_recommendations").fetchone()[0]
