"""The landing folder: where users drop JSON files, and how we find the ones that are ready.

Layout: ``<landing>/{users,artists,ratings}/**/<name>.{json,jsonl,ndjson}[.gz]``.

A file is *in progress* (and skipped) while its name ends in ``.tmp`` or ``.part`` or starts
with a dot: writers should write under such a name and rename when done, which is atomic.
Paths are resolved and must stay inside the landing folder, so a symlink or a crafted name
can never make us read a file elsewhere.
"""

from __future__ import annotations

import gzip
import hashlib
import mmap
import os
import re
from dataclasses import dataclass
from pathlib import Path

KINDS = ("users", "artists", "ratings")
DATA_SUFFIXES = (".json", ".jsonl", ".ndjson")
IN_PROGRESS_SUFFIXES = (".tmp", ".part")


@dataclass(frozen=True)
class LandingFile:
    kind: str
    path: Path  # absolute, resolved, inside the landing folder
    relative_path: str  # e.g. "ratings/2024-05.jsonl", the name used in the warehouse
    size_bytes: int
    mtime_ns: int

    @property
    def reader_path(self) -> str:
        """The path as DuckDB's ``read_json``/``read_csv`` take it: they read a path as a
        glob pattern, so its ``*``, ``?`` and ``[`` are escaped (``x[1].jsonl`` would
        otherwise read ``x1.jsonl``)."""
        return re.sub(r"([*?\[])", r"[\1]", str(self.path))

    @property
    def is_gzip(self) -> bool:
        return self.path.suffix == ".gz"

    def sha256(self) -> str:
        digest = hashlib.sha256()
        with self.path.open("rb") as stream:
            # mapped, the file is hashed in the page cache without a copy, in one call that
            # releases the GIL; an empty file cannot be mapped
            if os.fstat(stream.fileno()).st_size:
                with mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as content:
                    digest.update(content)
        return digest.hexdigest()

    def read_text(self) -> str:
        opener = gzip.open if self.is_gzip else open
        with opener(self.path, "rb") as stream:
            return stream.read().decode("utf-8", errors="replace")

    def is_json_array(self) -> bool:
        """Sniff the first non-blank byte: ``[`` means a JSON array, anything else JSON Lines."""
        opener = gzip.open if self.is_gzip else open
        with opener(self.path, "rb") as stream:
            while chunk := stream.read(4096):
                stripped = chunk.lstrip()
                if stripped:
                    return stripped.startswith(b"[")
        return False


def is_ready(path: Path) -> bool:
    name = path.name
    if name.startswith(".") or name.endswith(IN_PROGRESS_SUFFIXES):
        return False
    base = name[: -len(".gz")] if name.endswith(".gz") else name
    return base.endswith(DATA_SUFFIXES)


def resolve_inside(landing_dir: Path, candidate: Path) -> Path | None:
    """The resolved path if it stays inside ``landing_dir``, else None."""
    root = landing_dir.resolve()
    resolved = (root / candidate).resolve()
    return resolved if resolved.is_relative_to(root) and resolved != root else None


def scan(landing_dir: str | Path) -> list[LandingFile]:
    """Every ready data file under the landing folder, users and artists before ratings."""
    landing_dir = Path(landing_dir)
    found = []
    for kind in KINDS:
        kind_dir = landing_dir / kind
        if not kind_dir.is_dir():
            continue
        for candidate in sorted(kind_dir.rglob("*")):
            resolved = resolve_inside(landing_dir, candidate.relative_to(landing_dir))
            if resolved is None or not resolved.is_file() or not is_ready(candidate):
                continue
            stat = resolved.stat()
            found.append(
                LandingFile(
                    kind=kind,
                    path=resolved,
                    relative_path=candidate.relative_to(landing_dir).as_posix(),
                    size_bytes=stat.st_size,
                    mtime_ns=stat.st_mtime_ns,
                )
            )
    return found


@dataclass(frozen=True)
class Readiness:
    """What a sensor tick found: files ready to ingest, and the observations to remember."""

    ready: list[LandingFile]
    requested: dict[str, str]  # path -> "size:mtime" of every file already handed on
    pending: dict[str, str]  # path -> "size:mtime" of files seen for the first time or changed


def ready_files(
    files: list[LandingFile], requested: dict[str, str], pending: dict[str, str]
) -> Readiness:
    """Files whose size and mtime did not change since the previous look, and are new.

    A writer that appends for longer than one look keeps changing the pair, so a half-written
    file waits; one that writes under ``.tmp``/``.part`` and renames is picked up at once on
    the next look after it appears unchanged.
    """
    ready, still_pending, requested = [], {}, dict(requested)
    for file in files:
        stamp = f"{file.size_bytes}:{file.mtime_ns}"
        if requested.get(file.relative_path) == stamp:
            continue
        if pending.get(file.relative_path) == stamp:
            ready.append(file)
            requested[file.relative_path] = stamp
        else:
            still_pending[file.relative_path] = stamp
    return Readiness(ready, requested, still_pending)
