"""The warehouse readers open, published whole from the pipeline's working copy.

DuckDB lets a process write a file only while no other process holds it, even read-only: a
reader that kept ``duckdb.connect("warehouse.duckdb", read_only=True)`` open made the next
run fail. So runs write a working copy that no reader opens, and after each use of it publish
the whole of it: a checkpointed copy, synced under a temporary name beside
``warehouse.duckdb`` and renamed over it. A reader that holds the old file goes on reading
it as it was (its inode lives until the reader closes it), one that opens after the rename
sees the new one, and none ever blocks a run or sees a file half-copied.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import duckdb

# how much of each file one read compares
COMPARED_BYTES = 4 * 2**20


def working_copy(published: Path) -> Path:
    """Where the pipeline keeps the database it publishes as ``published``; only runs open it."""
    return published.parent / "pipeline" / published.name


def adopt(published: Path, working: Path) -> None:
    """Start the working copy of a home that has none from its published warehouse (a home
    from before there was one, whose runs wrote ``published`` itself).

    A write-ahead log beside it, of a run that ended before it checkpointed, moves along:
    DuckDB refuses a file whose log belongs to another.
    """
    if working.exists() or not published.exists():
        return
    working.parent.mkdir(parents=True, exist_ok=True)
    staged = _synced_copy(published, beside=working)
    if _log_of(published).exists():
        os.replace(_log_of(published), _log_of(working))
    os.replace(staged, working)


def publish(con: duckdb.DuckDBPyConnection, working: Path, published: Path) -> None:
    """Replace ``published`` with a copy of ``working``, unless it already holds what
    ``working`` does.

    ``con`` is the connection writing ``working``: it holds DuckDB's write lock, so no other
    process changes the file while it is copied.
    """
    con.execute("CHECKPOINT")  # every commit into the file itself, none left in its log
    if _same_content(published, working):
        return
    os.replace(_synced_copy(working, beside=published), published)


def _synced_copy(source: Path, beside: Path) -> Path:
    """A copy of ``source`` on disk under a temporary name next to ``beside``, with the mode
    and modification time of ``source``."""
    for unfinished in beside.parent.glob(f".{beside.name}.*.part"):
        unfinished.unlink()  # of a copy killed midway: one process at a time copies
    descriptor, name = tempfile.mkstemp(
        dir=beside.parent, prefix=f".{beside.name}.", suffix=".part"
    )
    os.close(descriptor)
    try:
        shutil.copyfile(source, name)
        shutil.copystat(source, name)
        with open(name, "rb") as copy:
            os.fsync(copy.fileno())
    except BaseException:  # a full disk, say: leave no part copy taking its space
        os.unlink(name)
        raise
    return Path(name)


def _same_content(published: Path, working: Path) -> bool:
    """Whether the two files hold the same bytes. Not by size and mtime: where mtimes have
    whole seconds, two steps that end in the same second with files of one size look alike.
    A checkpoint rewrites the header in the first blocks, so a changed file differs early."""
    try:
        if published.stat().st_size != working.stat().st_size:
            return False
        with published.open("rb") as one, working.open("rb") as other:
            while block := one.read(COMPARED_BYTES):
                if block != other.read(COMPARED_BYTES):
                    return False
    except FileNotFoundError:
        return False
    return True


def _log_of(database: Path) -> Path:
    return database.with_name(database.name + ".wal")
