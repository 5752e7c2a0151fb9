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

import fcntl
import os
import shutil
import tempfile
import time
from pathlib import Path

import duckdb

from musicrec_assets.warehouse.tables import (
    DamagedStore,
    WarehouseBusy,
    connect,
    first_line,
    not_a_file,
)

# how much of each file one read compares
COMPARED_BYTES = 4 * 2**20
# every DuckDB database file says so at this place of its first block
MAGIC, MAGIC_AT = b"DUCK", 8


def working_copy(published: Path) -> Path:
    """Where the pipeline keeps the database it publishes as ``published``; only runs open it."""
    return published.parent / "pipeline" / published.name


def adopt(published: Path, working: Path) -> None:
    """Start the working copy of a home that has none from its published warehouse (a home
    from before there was one, whose runs wrote ``published`` itself).

    A write-ahead log beside it, of a run that ended before it checkpointed, moves along:
    DuckDB refuses a file whose log belongs to another.
    """
    if damage(working) or damage(published):
        repair(published, working)
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


def damage(database: Path, deep: bool = False) -> str | None:
    """Why ``database`` is not a DuckDB database file (random bytes, empty, cut short), or
    None when it is one or does not exist. The header alone (a read of 12 bytes, cheap enough
    for every step), or with ``deep`` an opening read-only that reads its catalog too (a file
    a run holds counts as whole: that run is writing it)."""
    if other := not_a_file(database):
        return other
    try:
        with database.open("rb") as file:
            header = file.read(MAGIC_AT + len(MAGIC))
    except FileNotFoundError:
        return None
    if not header:
        return "empty"
    if header[MAGIC_AT:] != MAGIC:
        return "not a DuckDB database file"
    if deep:
        try:
            with connect(database, read_only=True) as con:
                con.execute("SELECT count(*) FROM duckdb_tables()").fetchall()
        except WarehouseBusy:
            return None
        except DamagedStore as error:
            return first_line(error.__cause__ or error)
        except (duckdb.Error, OSError) as error:
            return first_line(error)
    return None


def _set_aside(damaged: Path) -> Path:
    """Move a damaged copy, and its log (no use to a new file), out of the way under a name
    that says so: ``<name>.damaged-<time>``."""
    aside = damaged.with_name(f"{damaged.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
    os.replace(damaged, aside)
    if _log_of(damaged).exists():
        os.replace(_log_of(damaged), _log_of(aside))
    return aside


def repair(published: Path, working: Path, deep: bool = False) -> str | None:
    """Make a damaged copy of the warehouse whole again from the other one, which holds the
    same tables as of the last step (every step publishes the working copy when it ends): a
    damaged working copy is set aside (``….damaged-<time>``) and restored from the published
    copy; a damaged published copy is published again from the working copy. Returns what
    was done, or None when both are whole (by :func:`damage`, ``deep`` or not).

    Raises
    ------
    DamagedStore
        When no whole copy is left to restore from; the message says what to do.
    """
    if not (damage(working, deep) or damage(published, deep)):
        return None
    working.parent.mkdir(parents=True, exist_ok=True)
    # one process at a time repairs (a run's step, `musicrec run`, a reader)
    with (working.parent / ".repair.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        broken_working, broken_published = damage(working, deep), damage(published, deep)
        whole_published = published.exists() and not broken_published
        whole_working = working.exists() and not broken_working
        if broken_working and whole_published:
            aside = _set_aside(working)
            adopt(published, working)
            return (
                f"the runs' working copy of the warehouse {working} was damaged "
                f"({broken_working}): set aside as {aside.name} and restored from {published}, "
                "as the last step published it"
            )
        if broken_published and whole_working:
            # a file is renamed over, but a directory (say) in its place would refuse the
            # rename, and may hold what someone wants back
            aside = _set_aside(published) if not_a_file(published) else None
            try:
                with connect(working) as con:
                    publish(con, working, published)
            except WarehouseBusy:
                return None  # a run is writing it, and publishes it when its step ends
            return (
                f"the warehouse {published} was damaged ({broken_published}): "
                + (f"set aside as {aside.name} and " if aside else "")
                + f"published again from the runs' working copy {working}"
            )
        if not (broken_working or broken_published):
            return None  # repaired meanwhile by another process
        damaged = [
            f"{path} ({why})"
            for path, why in ((working, broken_working), (published, broken_published))
            if why
        ]
        raise DamagedStore(
            f"the warehouse is damaged, with no whole copy to restore it from: "
            f"{' and '.join(damaged)}; restore it from a backup, or move "
            f"{' and '.join(str(path) for path in (working, published) if path.exists())} "
            "aside to start an empty warehouse (the landing files still there are ingested "
            "again)"
        )
