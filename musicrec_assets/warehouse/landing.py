"""The landing folder: where users drop JSON files, how we find the ones that are ready, and
how our own generators and importers write them.

Layout: ``<landing>/{users,artists,ratings}/**/<name>.{json,jsonl,ndjson}[.gz]``.

A file is *in progress* (and skipped) while its name ends in ``.tmp`` or ``.part`` or starts
with a dot: writers should write under such a name and rename when done, which is atomic.
Paths are resolved and must stay inside the landing folder, so a symlink or a crafted name
can never make us read a file elsewhere.

Reading: a file's format follows its name (``.jsonl``/``.ndjson``: JSON Lines; ``.json``: a
JSON array when its first non-blank character, after an optional UTF-8 BOM, is ``[``, else
JSON Lines), and `LandingFile.open_content` gives its bytes, uncompressed, with a gzip stream
that cannot be read raised as `UnreadableFile`, naming the file.

Writing: `open_for_writing` gives a binary stream that is written under ``<name>.part`` and
renamed to ``<name>`` only once closed without error (gzip'd when the name ends in ``.gz``,
with a header that depends on the data only); `write_json_records` writes dicts through it as
JSON Lines or one JSON array.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import json
import mmap
import os
import re
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

KINDS = ("users", "artists", "ratings")
DATA_SUFFIXES = (".json", ".jsonl", ".ndjson")
IN_PROGRESS_SUFFIXES = (".tmp", ".part")
# the in-progress suffix our own writers use while a file is being written
WRITING_SUFFIX = IN_PROGRESS_SUFFIXES[-1]

UTF8_BOM = b"\xef\xbb\xbf"

# Level 3 compresses about twice as fast as the default 6 for ~8% bigger files, which
# matters for the multi-gigabyte bulk outputs.
GZIP_LEVEL = 3
# a gzip member ends with its data's CRC-32 and size (modulo 2^32), 4 bytes each
GZIP_TRAILER_BYTES = 8


class UnreadableFile(Exception):
    """A landing file whose content cannot be read (a ``.gz`` that is not gzip, or ends early):
    the message is one line that names the file."""


class ChangedSinceLooked(Exception):
    """A landing file written to (or replaced) after it was looked at: what a run approved is
    not what is there, so it is left for a run that looks again. One line, naming the file."""


@dataclass(frozen=True)
class LandingFile:
    kind: str
    path: Path  # absolute, resolved, inside the landing folder
    relative_path: str  # e.g. "ratings/2024-05.jsonl", the name used in the warehouse
    size_bytes: int
    mtime_ns: int
    # what a rewrite that keeps the size and restores the mtime still changes (see scan)
    changed_ns: int = 0
    inode: int = 0
    # set by `pinned`: the open file, which every read goes through
    descriptor: int | None = None

    @property
    def stamp(self) -> str:
        """Size and mtime, as `ready_files` compares them between two looks."""
        return f"{self.size_bytes}:{self.mtime_ns}"

    @property
    def _source(self) -> Path:
        return self.path if self.descriptor is None else Path(f"/dev/fd/{self.descriptor}")

    @property
    def reader_path(self) -> str:
        """The path as DuckDB's ``read_json``/``read_csv`` take it: they read a path as a
        glob pattern, so its ``*``, ``?`` and ``[`` are escaped (``x[1].jsonl`` would
        otherwise read ``x1.jsonl``)."""
        return re.sub(r"([*?\[])", r"[\1]", str(self._source))

    @property
    def is_gzip(self) -> bool:
        return self.path.suffix == ".gz"

    @property
    def compression(self) -> str:
        """As ``read_json`` takes it: by the name, which a pinned file's reader path lacks."""
        return "gzip" if self.is_gzip else "none"

    @contextlib.contextmanager
    def pinned(self) -> Iterator[LandingFile]:
        """The file opened once, as it was when looked at: every read of the copy this yields
        (DuckDB's, the hash, the text reader) goes through the open file, so a file renamed
        over the path meanwhile changes nothing, and `check_unchanged` tells whether anyone
        wrote to it since. Raises `ChangedSinceLooked` when the open file already differs
        from what the look found (by size, mtime or inode)."""
        descriptor = os.open(self.path, os.O_RDONLY)
        try:
            pinned = dataclasses.replace(self, descriptor=descriptor)
            opened = os.fstat(descriptor)
            if (opened.st_size, opened.st_mtime_ns, opened.st_ino) != (
                self.size_bytes,
                self.mtime_ns,
                self.inode or opened.st_ino,
            ):
                raise ChangedSinceLooked(f"{self.relative_path}: changed since it was looked at")
            yield dataclasses.replace(pinned, changed_ns=opened.st_ctime_ns, inode=opened.st_ino)
        finally:
            os.close(descriptor)

    def check_unchanged(self) -> None:
        """Raises `ChangedSinceLooked` when a pinned file was written since it was opened:
        what was read from it may be half of one version and half of another."""
        now = os.fstat(self.descriptor)
        # not the ctime: a file renamed over this one's path moves it, and changes nothing read
        if (now.st_size, now.st_mtime_ns) != (self.size_bytes, self.mtime_ns):
            raise ChangedSinceLooked(f"{self.relative_path}: changed while it was being read")

    def sha256(self) -> str:
        digest = hashlib.sha256()
        with self._source.open("rb") as stream:
            # mapped, the file is hashed in the page cache without a copy, in one call that
            # releases the GIL; an empty file cannot be mapped
            if os.fstat(stream.fileno()).st_size:
                with mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as content:
                    digest.update(content)
        return digest.hexdigest()

    def content_size(self) -> int:
        """About how many bytes `open_content` gives, without reading them: the file's size,
        or for gzip what its trailer says (the last member's size, modulo 2^32), if more."""
        if not self.is_gzip or self.size_bytes < GZIP_TRAILER_BYTES:
            return self.size_bytes
        with self._source.open("rb") as raw:
            raw.seek(-4, os.SEEK_END)
            return max(self.size_bytes, int.from_bytes(raw.read(4), "little"))

    @contextlib.contextmanager
    def open_content(self) -> Iterator[IO[bytes]]:
        """The file's bytes, uncompressed when it is gzip'd. Raises `UnreadableFile` when the
        gzip stream cannot be read (an OSError, such as no permission, passes as it is)."""
        with self._source.open("rb") as raw:
            if not self.is_gzip:
                yield raw
                return
            # gzip reads an empty file as empty content; DuckDB, rightly, as no gzip stream
            if os.fstat(raw.fileno()).st_size == 0:
                raise UnreadableFile(f"{self.relative_path}: an empty file, not a gzip stream")
            yield _GzipContent(raw, self.relative_path)

    def read_text(self) -> str:
        """The whole content as text, undecodable bytes escaped as ``\\xNN``."""
        with self.open_content() as stream:
            return stream.read().decode("utf-8", errors="backslashreplace")

    def json_format(self) -> str:
        """``newline_delimited`` or ``array``, as ``read_json`` names them: by the name's
        suffix, and for ``.json`` by `is_json_array`."""
        name = self.path.name.removesuffix(".gz")
        if name.endswith(".json") and self.is_json_array():
            return "array"
        return "newline_delimited"

    def is_json_array(self) -> bool:
        """Sniff the first non-blank byte after an optional BOM: ``[`` means a JSON array."""
        with self.open_content() as stream:
            start = True
            while chunk := stream.read(4096):
                stripped = (chunk.removeprefix(UTF8_BOM) if start else chunk).lstrip()
                start = False
                if stripped:
                    return stripped.startswith(b"[")
        return False


class _GzipContent:
    """A gzip stream whose read errors name the file (`UnreadableFile`)."""

    def __init__(self, raw: IO[bytes], name: str):
        self._stream = gzip.GzipFile(fileobj=raw, mode="rb")
        self._name = name

    def read(self, size: int = -1) -> bytes:
        try:
            return self._stream.read(size)
        except gzip.BadGzipFile as error:
            raise UnreadableFile(f"{self._name}: not a gzip file ({error})") from error
        except EOFError as error:
            raise UnreadableFile(f"{self._name}: the gzip stream ends early (truncated)") from error
        except zlib.error as error:
            raise UnreadableFile(f"{self._name}: corrupt gzip data ({error})") from error


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
                    # any write, and any utime() that restores an mtime, moves the ctime
                    changed_ns=stat.st_ctime_ns,
                    inode=stat.st_ino,
                )
            )
    return found


@dataclass(frozen=True)
class Readiness:
    """What a sensor tick found: files ready to ingest, and the observations to remember."""

    ready: list[LandingFile]
    requested: dict[str, str]  # path -> "size:mtime" of every file already handed on
    pending: dict[str, str]  # path -> "size:mtime" of files just written, for the next look


def ready_files(
    files: list[LandingFile],
    requested: dict[str, str],
    pending: dict[str, str],
    now_ns: int | None = None,
) -> Readiness:
    """Files that are new and complete: not written to in the last `SETTLE_SECONDS` before
    ``now_ns`` (default: now), or whose size and mtime did not change since the previous look.

    A writer that appends keeps moving the mtime, so a half-written file waits; one that
    writes under ``.tmp``/``.part`` and renames is taken at the first look that finds it
    unchanged for `SETTLE_SECONDS` (a file renamed in with an older mtime, at once), so the
    landing sensor takes a drop at its first tick after it, not a tick later.
    """
    just_written_since = just_written_since_ns(now_ns)
    ready, still_pending, requested = [], {}, dict(requested)
    for file in files:
        stamp = file.stamp
        if requested.get(file.relative_path) == stamp:
            continue
        if file.mtime_ns < just_written_since or pending.get(file.relative_path) == stamp:
            ready.append(file)
            requested[file.relative_path] = stamp
        else:
            still_pending[file.relative_path] = stamp
    return Readiness(ready, requested, still_pending)


# A file written in the last SETTLE_SECONDS is not complete yet: it gets a second look (the
# next sensor tick, or `settled`'s that long later); one whose size and mtime held still
# between the looks, or that no one wrote to for that long, is complete.
SETTLE_SECONDS = 2.0


def just_written_since_ns(now_ns: int | None = None) -> int:
    """The mtime (ns) from which a file counts as just written, at ``now_ns`` (default now)."""
    return (time.time_ns() if now_ns is None else now_ns) - int(SETTLE_SECONDS * 1e9)


# the run tag that carries the files a run was started for, with their stamps (`manifest`)
MANIFEST_TAG = "musicrec/manifest"


def manifest(files: Iterable[LandingFile]) -> str:
    """The files a run is started for, as its `MANIFEST_TAG` carries them: path → stamp."""
    return json.dumps({file.relative_path: file.stamp for file in files}, sort_keys=True)


def in_manifest(files: list[LandingFile], carried: str) -> list[LandingFile]:
    """The ``files`` that the manifest ``carried`` names, each as it was when approved: one
    written to since is left for a run that looks again."""
    approved = json.loads(carried)
    return [file for file in files if approved.get(file.relative_path) == file.stamp]


def settled(landing_dir: str | Path) -> list[LandingFile]:
    """The files of the landing folder that are complete by `ready_files`' rule, for a run that
    carries no manifest: one not modified in the last `SETTLE_SECONDS` at once, one modified
    since after a second look that long later finds it unchanged; one still changing is left
    for the next run."""
    files = scan(landing_dir)
    recent_since = just_written_since_ns()
    if all(file.mtime_ns < recent_since for file in files):
        return files
    time.sleep(SETTLE_SECONDS)
    again = set(scan(landing_dir))
    return [file for file in files if file.mtime_ns < recent_since or file in again]


def landing_path(landing_dir: str | Path, kind: str, name: str, compressed: bool = False) -> Path:
    """Where a file ``name`` of ``kind`` (``users``, ``artists``, ``ratings``) goes in a landing
    folder: ``<landing_dir>/<kind>/<name>``, with ``.gz`` appended if ``compressed``."""
    return Path(landing_dir) / kind / (name + ".gz" if compressed else name)


@contextlib.contextmanager
def open_for_writing(path: str | Path) -> Iterator[IO[bytes]]:
    """A binary stream for a landing file that appears at ``path`` only once closed without
    error: written under ``<name>.part`` (which `scan` skips) and renamed when complete, a
    partial file removed on an error. A name ending in ``.gz`` is gzip-compressed, with no
    name and no time in the header, so the bytes depend on what is written only. Parent
    folders are created."""
    path = Path(path)
    with _atomic_output(path) as raw, _maybe_gzip(raw, path.suffix == ".gz") as sink:
        yield sink


def write_json_records(path: str | Path, records: Iterable[dict]) -> int:
    """Write dicts to a landing file, under a ``.part`` name renamed when complete.

    The landing scan skips ``.part`` files, so it never reads a half-written one.

    Parameters
    ----------
    path : str or Path
        ``*.jsonl`` for JSON Lines or ``*.json`` for one JSON array, either with an
        optional ``.gz`` (gzip, with no name or time in the header so that the bytes
        depend on the records only). Parent folders are created.
    records : iterable of dict
        Streamed; JSON-serializable values, non-ASCII text written as UTF-8.

    Returns
    -------
    int
        Records written.
    """
    path = Path(path)
    compress = path.suffix == ".gz"
    fmt = Path(path.stem).suffix if compress else path.suffix
    if fmt not in (".jsonl", ".json"):
        raise ValueError(f"{path.name}: expected a .jsonl or .json name, optionally .gz")
    with open_for_writing(path) as sink:
        return _dump_records(sink, records, array=fmt == ".json")


def _dump_records(out: IO[bytes], records: Iterable[dict], *, array: bool) -> int:
    if array:
        out.write(b"[")
    count = 0
    for record in records:
        if count:
            out.write(b",\n" if array else b"\n")
        elif array:
            out.write(b"\n")
        out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode())
        count += 1
    if array:
        out.write(b"\n]\n")
    elif count:
        out.write(b"\n")
    return count


@contextlib.contextmanager
def _atomic_output(path: Path) -> Iterator[IO[bytes]]:
    """A binary file that appears at ``path`` only once closed without error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + WRITING_SUFFIX)
    try:
        with open(partial, "wb") as raw:
            yield raw
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _maybe_gzip(raw: IO[bytes], compress: bool) -> contextlib.AbstractContextManager[IO[bytes]]:
    if not compress:
        return contextlib.nullcontext(raw)
    # No file name and mtime 0 in the header: the bytes depend on the data only.
    return gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=GZIP_LEVEL)
