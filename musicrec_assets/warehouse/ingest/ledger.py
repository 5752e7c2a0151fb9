"""The ``ingested_files`` ledger: which files, by path and by content, are in already."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from musicrec_assets.warehouse.landing import LandingFile
from musicrec_assets.warehouse.tables import scalar


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
    skipped: bool = False  # same content was ingested before


def already_ingested(con, file: LandingFile) -> bool:
    """Known by path, size and mtime: the cheap test, before the content's hash."""
    query = "SELECT count(*) FROM ingested_files WHERE path = ? AND size_bytes = ? AND mtime_ns = ?"
    return scalar(con, query, [file.relative_path, file.size_bytes, file.mtime_ns]) > 0


def content_seen(con, kind: str, sha256: str) -> bool:
    query = "SELECT count(*) FROM ingested_files WHERE sha256 = ? AND kind = ?"
    return scalar(con, query, [sha256, kind]) > 0


def record(con, file: LandingFile, report: IngestReport, now: datetime) -> None:
    """The ledger's row for ``file``: the last write of either path, inside its transaction."""
    con.execute(
        "INSERT INTO ingested_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        ],
    )
