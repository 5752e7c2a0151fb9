"""A landing file is read through one open file: its hash and its rows come from the same
bytes, whatever happens to its path meanwhile, and one written to while it is read is left
for the next look instead of being recorded half old, half new."""

import hashlib
import os

from landing_helpers import GOOD_RATING, ingest_all, jsonl, seed_catalogue, table, write

from musicrec_assets.warehouse import ingest

pytest_plugins = ["landing_fixtures"]

# a rejected record sends the file down the general path, which reads it after the hash
OLD = jsonl(GOOD_RATING, {"user_id": "ann", "artist_id": "a2", "rating": 99})
NEW = jsonl({"user_id": "bob", "artist_id": "a1", "rating": 1}, {"rating": 99})


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def ratings_ledger(con) -> list:
    return table(
        con,
        """SELECT sha256, rows_read FROM ingested_files WHERE kind = 'ratings'
           ORDER BY ingested_at""",
    )


def ingest_while(con, landing_dir, monkeypatch, meanwhile) -> ingest.IngestReport:
    """Ingest ``ratings/r.jsonl`` (``OLD``) with ``meanwhile(path)`` done to it between
    the hash and the general path's read; the file's report."""
    seed_catalogue(con, landing_dir)
    path = write(landing_dir, "ratings/r.jsonl", OLD)
    general_path = ingest.general_path.ingest

    def interfered(*args):
        meanwhile(path)
        return general_path(*args)

    monkeypatch.setattr(ingest.general_path, "ingest", interfered)
    [report] = ingest_all(con, landing_dir)[-1:]
    monkeypatch.undo()
    return report


def test_a_file_renamed_over_while_it_is_ingested_is_recorded_as_read(
    con, landing_dir, monkeypatch
):
    def renamed_over(path):
        os.replace(write(landing_dir, "ratings/.incoming", NEW), path)

    ingest_while(con, landing_dir, monkeypatch, renamed_over)
    assert ratings_ledger(con) == [(sha256(OLD), 2)]
    assert table(con, "SELECT user_id, artist_id FROM ratings") == [("ann", "a1")]

    # the new version goes in once, and the old one, dropped again, is known
    ingest_all(con, landing_dir)
    ingest_all(con, landing_dir)
    write(landing_dir, "ratings/old-again.jsonl", OLD)
    assert [r.skipped for r in ingest_all(con, landing_dir)][-2:] == [True, True]
    assert ratings_ledger(con) == [(sha256(OLD), 2), (sha256(NEW), 2)]
    assert table(con, "SELECT user_id, artist_id FROM ratings ORDER BY 1") == [
        ("ann", "a1"),
        ("bob", "a1"),
    ]


def test_a_file_written_to_while_it_is_ingested_is_left_for_the_next_look(
    con, landing_dir, monkeypatch
):
    def appended(path):
        with path.open("a") as stream:
            stream.write(NEW)

    report = ingest_while(con, landing_dir, monkeypatch, appended)
    assert report.failure == "ratings/r.jsonl: changed while it was being read"
    assert ratings_ledger(con) == [] and table(con, "SELECT count(*) FROM ratings") == [(0,)]
    ingest_all(con, landing_dir)
    assert ratings_ledger(con) == [(sha256(OLD + NEW), 4)]
