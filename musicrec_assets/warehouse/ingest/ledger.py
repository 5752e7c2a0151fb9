"""The ``ingested_files`` ledger: which files, by content, are in already (or could not be
read), and ``landing_fingerprints``: which content a landing path held when last looked at.

The rule (`holds_ingested`): a file is new, and ingested, when its path holds content that it
did not hold when last looked at, even content ingested before (a file changed and then
restored to an earlier version is ingested again); a file at a path never looked at is new
unless the same content, of its kind, was ingested before under any name (a copy, a drop under
a second name). So content dropped again, unchanged at its path or under another name, is
ingested once; one content may then have several rows in ``ingested_files``, one per ingest.

A file is known without reading it when its path, size, mtime, ctime and inode are those of
its fingerprint: a rewrite that keeps the size and puts the mtime back still moves the ctime,
and a file renamed over it has another inode. Otherwise its sha256 decides, computed first
when the file may hold content it would be skipped for (`worth_hashing_first`, by its size),
else while the file is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd

from musicrec_assets.warehouse.landing import LandingFile
from musicrec_assets.warehouse.tables import connect, scalar, table_exists


@dataclass
class IngestReport:
    """What ingesting one file did: ``rows_read = rows_accepted + rows_rejected``."""

    path: str
    kind: str
    sha256: str
    rows_read: int = 0
    rows_accepted: int = 0
    rows_rejected: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    skipped: bool = False  # same content was ingested (or failed) before
    failure: str | None = None  # one line: why the file could not be read


def _same_stat(fingerprint: str) -> str:
    """SQL that the fingerprint row ``fingerprint`` is of `_stat`'s parameters."""
    columns = ("path", "size_bytes", "mtime_ns", "changed_ns", "inode")
    return " AND ".join(f"{fingerprint}.{column} = ?" for column in columns)


def _stat(file: LandingFile) -> list:
    return [file.relative_path, file.size_bytes, file.mtime_ns, file.changed_ns, file.inode]


def known_sha256(con, file: LandingFile) -> str | None:
    """The sha256 of the file's content when its fingerprint says it has not changed."""
    query = f"SELECT sha256 FROM landing_fingerprints f WHERE {_same_stat('f')}"
    found = con.execute(query, _stat(file)).fetchall()
    return found[0][0] if found else None


def already_ingested(con, file: LandingFile) -> bool:
    """Known, without reading the file: unchanged since its content was ingested (or failed).
    Works on a read-only connection to a warehouse of any age."""
    if not table_exists(con, "landing_fingerprints"):
        return False
    query = f"""SELECT EXISTS (FROM landing_fingerprints f JOIN ingested_files i USING (sha256)
                               WHERE i.kind = ? AND {_same_stat("f")})"""
    return scalar(con, query, [file.kind, *_stat(file)])


def not_yet_ingested(warehouse: Path, files: list[LandingFile]) -> list[LandingFile]:
    """The ``files`` that the ledger of ``warehouse`` (the copy readers open) does not know as
    they are now, without reading them: all of them before the first ingest."""
    if not files or not warehouse.exists():
        return files
    with connect(warehouse, read_only=True) as con:
        if not table_exists(con, "ingested_files"):
            return files
        return [file for file in files if not already_ingested(con, file)]


def rows_from(con, table: str, paths: list[str], limit: int) -> pd.DataFrame:
    """Up to ``limit`` rows of ``table`` (a kind's table, or ``rejected_rows``) that came from
    the landing files ``paths``: what a run took, for a preview."""
    return con.execute(
        f"SELECT * FROM {table} WHERE list_contains(?, source_file) LIMIT ?", [paths, limit]
    ).df()


# what the file's path held when last looked at, if it was ever looked at (``$path``)
_LAST_HELD = "(FROM landing_fingerprints WHERE path = $path)"


def _by_the_rule(condition: str) -> str:
    """SQL of the rule (`holds_ingested`): whether what the path held when last looked at
    meets ``condition``, or for a path never looked at, content of ``$kind`` in the ledger."""
    return f"""SELECT CASE WHEN EXISTS {_LAST_HELD}
                           THEN EXISTS (FROM {_LAST_HELD} WHERE {condition})
                           ELSE EXISTS (FROM ingested_files WHERE kind = $kind AND {condition})
                      END"""


def worth_hashing_first(con, file: LandingFile) -> bool:
    """Whether the file may hold content it is skipped for (`holds_ingested`), by its size:
    the size of what its path held when last looked at, or for a path never looked at, of
    content of its kind in the ledger (only then can it be a copy)."""
    query = _by_the_rule("size_bytes = $size")
    return scalar(con, query, _rule_parameters(file, size=file.size_bytes))


def holds_ingested(con, file: LandingFile, sha256: str) -> bool:
    """Whether the file, of content ``sha256``, is in already, by the rule (see the module):
    its path held that content when last looked at; or its path was never looked at, and
    content of its kind was ingested (or found unreadable) under any name."""
    query = _by_the_rule("sha256 = $sha256")
    return scalar(con, query, _rule_parameters(file, sha256=sha256))


def _rule_parameters(file: LandingFile, **more) -> dict:
    return {"path": file.relative_path, "kind": file.kind, **more}


def remember(con, file: LandingFile, sha256: str, now: datetime) -> None:
    """The file's fingerprint: its path, as it is now, holds ``sha256``. The last write of
    every ingest's transaction: ``file`` is pinned (`LandingFile.pinned`), and one written to
    since it was opened raises `landing.ChangedSinceLooked`, which rolls it all back."""
    file.check_unchanged()
    con.execute("DELETE FROM landing_fingerprints WHERE path = ?", [file.relative_path])
    con.execute(
        "INSERT INTO landing_fingerprints VALUES (?, ?, ?, ?, ?, ?, ?)",
        [*_stat(file), sha256, now],
    )


def record(con, file: LandingFile, report: IngestReport, now: datetime) -> None:
    """The ledger's row for ``file``: the last write of either path, inside its transaction;
    a file that could not be read has ``report.failure`` and no rows."""
    con.execute(
        """INSERT INTO ingested_files (path, sha256, kind, size_bytes, mtime_ns, rows_read,
                                       rows_accepted, rows_rejected, ingested_at, failure)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [
            file.relative_path,
            report.sha256,
            file.kind,
            file.size_bytes,
            file.mtime_ns,
            report.rows_read,
            report.rows_accepted,
            report.rows_rejected,
            now,
            report.failure,
        ],
    )
    remember(con, file, report.sha256, now)
