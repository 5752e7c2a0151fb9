"""Landing files for the ingest tests: written as given, then ingested as the assets do."""

import contextlib
import gzip
import json
from pathlib import Path

import duckdb

from musicrec_assets.warehouse import ingest, landing
from musicrec_assets.warehouse.tables import ensure_schema

GOOD_RATING = {"user_id": "ann", "artist_id": "a1", "rating": 4.0}


def write(landing_dir: Path, relative: str, content: str | bytes) -> Path:
    """``content`` at ``landing_dir/relative``, gzip'd when the name ends in ``.gz``; bytes are
    taken as they are, so that a test can put any byte in a file."""
    data = content.encode() if isinstance(content, str) else content
    return write_exactly(
        landing_dir, relative, gzip.compress(data) if relative.endswith(".gz") else data
    )


def write_exactly(landing_dir: Path, relative: str, data: bytes) -> Path:
    """``data`` at ``landing_dir/relative``, never compressed (a ``.gz`` that is no gzip)."""
    path = landing_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def jsonl(*records) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


def ingest_all(con, landing_dir: Path) -> list[ingest.IngestReport]:
    return [ingest.ingest_file(con, f) for f in landing.scan(landing_dir)]


@contextlib.contextmanager
def warehouse():
    connection = duckdb.connect()
    ensure_schema(connection)
    try:
        yield connection
    finally:
        connection.close()


def table(con, query):
    return con.execute(query).fetchall()


def seed_catalogue(con, landing_dir):
    write(landing_dir, "users/u.jsonl", jsonl({"id": "ann"}, {"id": "bob"}))
    write(landing_dir, "artists/a.json", json.dumps([{"id": "a1", "name": "X"}, {"id": "a2"}]))
    ingest_all(con, landing_dir)
