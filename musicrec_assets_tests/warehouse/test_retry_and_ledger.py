"""Parked ratings retried by a first ingest's rules, and a ledger that knows a file by its
content: not by its size and mtime alone, and a copy without reading it; a landing path's
versions: a file changed and then restored to an earlier version is a new arrival and is
ingested again, while the same content dropped again, unchanged at its path or under another
name, is ingested once."""

import os

from hypothesis import given, settings
from hypothesis import strategies as st
from landing_helpers import (
    GOOD_RATING,
    ingest_all,
    jsonl,
    seed_catalogue,
    table,
    warehouse,
    write,
    write_exactly,
)

from musicrec_assets.warehouse import ingest, landing
from musicrec_assets.warehouse.ingest import clean_pass, general_path, records
from musicrec_assets.warehouse.tables import ensure_schema

pytest_plugins = ["landing_fixtures"]


RATING = st.fixed_dictionaries(
    {
        "user_id": st.sampled_from(["u1", "u2"]),
        "artist_id": st.sampled_from(["a1", "a2"]),
        "rating": st.sampled_from([1.0, 2.0, 3.0, 4.0, 5.0]),
    },
    optional={"timestamp": st.sampled_from([100, 200])},
)


def ingest_in_order(tmp_path, files: list[list[dict]], users_before: int):
    """Ingest artists, the first ``users_before`` ratings files (their users unknown), the
    users, the retry (as the ratings asset runs it) and the other files. Returns what is
    stored, rejected and in the ledger."""
    landing_dir = tmp_path / "landing"
    with warehouse() as con:
        write(landing_dir, "artists/a.jsonl", jsonl({"id": "a1"}, {"id": "a2"}))
        ingest_all(con, landing_dir)
        for number, records_of_file in enumerate(files):
            if number == users_before:
                write(landing_dir, "users/u.jsonl", jsonl({"id": "u1"}, {"id": "u2"}))
                ingest_all(con, landing_dir)
                ingest.retry_pending_ratings(con)
            write(landing_dir, f"ratings/{number}.jsonl", jsonl(*records_of_file))
            ingest_all(con, landing_dir)
        write(landing_dir, "users/u.jsonl", jsonl({"id": "u1"}, {"id": "u2"}))
        ingest_all(con, landing_dir)
        ingest.retry_pending_ratings(con)
        return (
            table(con, 'SELECT user_id, artist_id, rating, "timestamp", source_file FROM ratings'),
            table(con, "SELECT source_file, record_no, reason FROM rejected_rows ORDER BY ALL"),
            table(
                con,
                """SELECT path, rows_read, rows_accepted, rows_rejected FROM ingested_files
                   WHERE kind = 'ratings' ORDER BY path""",
            ),
        )


@settings(max_examples=15, deadline=None)
@given(
    files=st.lists(st.lists(RATING, min_size=1, max_size=4), min_size=1, max_size=3),
    data=st.data(),
)
def test_parked_ratings_end_as_if_their_users_had_been_known(tmp_path_factory, files, data):
    users_before = data.draw(st.integers(1, len(files)), label="users_before")
    known_first = ingest_in_order(tmp_path_factory.mktemp("known"), files, users_before=0)
    parked = ingest_in_order(tmp_path_factory.mktemp("parked"), files, users_before)
    assert sorted(parked[0]) == sorted(known_first[0])
    assert parked[1:] == known_first[1:]
    pairs = {(user, artist) for user, artist, *_ in parked[0]}
    assert len(pairs) == len(parked[0])


def test_parked_repeats_of_a_pair_leave_one_rating(con, landing_dir):
    """The issue's case: 6 parked ratings for 4 pairs, within and across files."""
    write(landing_dir, "artists/a.jsonl", jsonl({"id": "a1"}, {"id": "a2"}))
    first = [
        {"user_id": "u1", "artist_id": "a1", "rating": 1, "timestamp": 10},
        {"user_id": "u1", "artist_id": "a1", "rating": 2, "timestamp": 20},
        {"user_id": "u1", "artist_id": "a2", "rating": 3},
    ]
    second = [
        {"user_id": "u1", "artist_id": "a2", "rating": 4},
        {"user_id": "u2", "artist_id": "a1", "rating": 5},
        {"user_id": "u2", "artist_id": "a2", "rating": 5},
    ]
    write(landing_dir, "ratings/1.jsonl", jsonl(*first))
    write(landing_dir, "ratings/2.jsonl", jsonl(*second))
    ingest_all(con, landing_dir)
    write(landing_dir, "users/u.jsonl", jsonl({"id": "u1"}, {"id": "u2"}))
    ingest_all(con, landing_dir)
    assert ingest.retry_pending_ratings(con) == 5
    assert table(con, "SELECT user_id, artist_id, rating FROM ratings ORDER BY ALL") == [
        ("u1", "a1", 2.0),
        ("u1", "a2", 4.0),
        ("u2", "a1", 5.0),
        ("u2", "a2", 5.0),
    ]
    assert table(con, "SELECT source_file, record_no, reason FROM rejected_rows") == [
        ("ratings/1.jsonl", 1, ingest.DUPLICATE)
    ]
    assert table(
        con,
        """SELECT path, rows_read, rows_accepted, rows_rejected FROM ingested_files
           WHERE kind = 'ratings' ORDER BY path""",
    ) == [("ratings/1.jsonl", 3, 2, 1), ("ratings/2.jsonl", 3, 3, 0)]
    assert ingest.retry_pending_ratings(con) == 0


def test_a_changed_file_with_the_same_size_and_mtime_is_ingested(con, landing_dir):
    seed_catalogue(con, landing_dir)
    path = write(landing_dir, "ratings/r.jsonl", jsonl({**GOOD_RATING, "rating": 1.0}))
    before = path.stat()
    ingest_all(con, landing_dir)
    path.write_text(jsonl({**GOOD_RATING, "rating": 2.0}))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    [report] = ingest_all(con, landing_dir)[-1:]
    assert not report.skipped
    assert table(con, "SELECT rating FROM ratings") == [(2.0,)]


def test_a_copy_is_known_by_its_hash_and_then_by_its_fingerprint(con, landing_dir, monkeypatch):
    seed_catalogue(con, landing_dir)
    path = write(landing_dir, "ratings/r.jsonl", jsonl(GOOD_RATING))
    ingest_all(con, landing_dir)
    (landing_dir / "ratings" / "copy.jsonl").write_bytes(path.read_bytes())

    def never(*args, **kwargs):
        raise AssertionError("the copy was read")

    for reader in (clean_pass.insert, general_path.parse_typed, records.load_all):
        monkeypatch.setattr(reader.__module__ + "." + reader.__name__, never)
    assert all(report.skipped for report in ingest_all(con, landing_dir))
    # and from then on without even its hash
    monkeypatch.setattr(landing.LandingFile, "sha256", never)
    assert all(report.skipped for report in ingest_all(con, landing_dir))
    assert table(con, "SELECT count(*) FROM ingested_files WHERE kind = 'ratings'") == [(1,)]


def test_the_sensor_check_knows_a_file_without_reading_it(con, landing_dir):
    seed_catalogue(con, landing_dir)
    path = write(landing_dir, "ratings/r.jsonl", jsonl(GOOD_RATING))
    [file] = [f for f in landing.scan(landing_dir) if f.kind == "ratings"]
    assert not ingest.already_ingested(con, file)
    ingest_all(con, landing_dir)
    assert ingest.already_ingested(con, file)
    before = path.stat()
    path.write_text(jsonl({**GOOD_RATING, "rating": 2.0}))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    [changed] = [f for f in landing.scan(landing_dir) if f.kind == "ratings"]
    assert not ingest.already_ingested(con, changed)
    con.execute("DROP TABLE landing_fingerprints")  # a warehouse from before fingerprints
    assert not ingest.already_ingested(con, file)


def test_a_warehouse_from_before_the_failure_column_gets_it(con, landing_dir):
    con.execute("DROP TABLE ingested_files")
    con.execute(
        """CREATE TABLE ingested_files (path VARCHAR, sha256 VARCHAR, kind VARCHAR,
           size_bytes BIGINT, mtime_ns BIGINT, rows_read BIGINT, rows_accepted BIGINT,
           rows_rejected BIGINT, ingested_at TIMESTAMP)"""
    )
    ensure_schema(con)
    seed_catalogue(con, landing_dir)
    write_exactly(landing_dir, "ratings/r.jsonl.gz", b"")
    [report] = ingest_all(con, landing_dir)[-1:]
    assert table(con, "SELECT failure FROM ingested_files WHERE kind = 'ratings'") == [
        (report.failure,)
    ]


FIRST = jsonl({**GOOD_RATING, "rating": 1.0})
CHANGED = jsonl({**GOOD_RATING, "rating": 2.0})


def write_version(landing_dir, relative: str, content: str, version: int):
    """``content`` at ``relative``, with an mtime of its own: a filesystem whose clock ticks
    coarsely still tells the versions apart."""
    path = write(landing_dir, relative, content)
    os.utime(path, ns=(version * 10**9, version * 10**9))
    return path


def ledger(con) -> list:
    return table(
        con,
        """SELECT path, rows_read, rows_accepted, rows_rejected FROM ingested_files
           WHERE kind = 'ratings' ORDER BY ingested_at""",
    )


def test_a_file_changed_and_restored_is_ingested_again(con, landing_dir):
    seed_catalogue(con, landing_dir)
    write_version(landing_dir, "ratings/r.jsonl", FIRST, 1)
    ingest_all(con, landing_dir)
    write_version(landing_dir, "ratings/r.jsonl", CHANGED, 2)
    ingest_all(con, landing_dir)
    assert table(con, "SELECT rating FROM ratings") == [(2.0,)]

    write_version(landing_dir, "ratings/r.jsonl", FIRST, 3)
    [report] = ingest_all(con, landing_dir)[-1:]
    assert (report.skipped, report.rows_accepted) == (False, 1)
    assert table(con, "SELECT rating FROM ratings") == [(1.0,)]
    assert ledger(con) == [("ratings/r.jsonl", 1, 1, 0)] * 3


def test_content_dropped_again_unchanged_or_under_another_name_is_ingested_once(con, landing_dir):
    seed_catalogue(con, landing_dir)
    path = write_version(landing_dir, "ratings/r.jsonl", FIRST, 1)
    ingest_all(con, landing_dir)
    path.unlink()
    write_version(landing_dir, "ratings/r.jsonl", FIRST, 2)  # dropped again, unchanged
    write_version(landing_dir, "ratings/copy.jsonl", FIRST, 3)  # under a second name
    assert all(report.skipped for report in ingest_all(con, landing_dir))
    # content that a path held before, dropped under a new name, is a copy too
    write_version(landing_dir, "ratings/r.jsonl", CHANGED, 4)
    ingest_all(con, landing_dir)
    write_version(landing_dir, "ratings/late-copy.jsonl", FIRST, 5)
    assert all(report.skipped for report in ingest_all(con, landing_dir))
    assert table(con, "SELECT rating FROM ratings") == [(2.0,)]
    assert len(ledger(con)) == 2


def test_a_restored_file_s_parked_ratings_end_as_if_their_user_had_been_known(
    tmp_path_factory,
):
    """Each ingest of the restored file parks its rating again; once the user arrives, the
    newest ingest's rating is stored, as if the user had been known all along, and the ledger
    counts each ingest's rating as accepted once."""
    rating = {"user_id": "late", "artist_id": "a1"}
    versions = [jsonl({**rating, "rating": value}) for value in (1.0, 2.0, 1.0)]
    outcomes = []
    for user_known_first in (True, False):
        landing_dir = tmp_path_factory.mktemp("landing")
        with warehouse() as con:
            seed_catalogue(con, landing_dir)
            if user_known_first:
                write(landing_dir, "users/late.jsonl", jsonl({"id": "late"}))
            for number, content in enumerate(versions, 1):
                write_version(landing_dir, "ratings/r.jsonl", content, number)
                ingest_all(con, landing_dir)
            write(landing_dir, "users/late.jsonl", jsonl({"id": "late"}))
            ingest_all(con, landing_dir)
            ingest.retry_pending_ratings(con)
            outcomes.append(
                (
                    table(con, "SELECT user_id, rating FROM ratings WHERE user_id = 'late'"),
                    table(con, "SELECT count(*) FROM rejected_rows"),
                    ledger(con),
                )
            )
    assert outcomes[0] == outcomes[1]
    assert outcomes[1] == ([("late", 1.0)], [(0,)], [("ratings/r.jsonl", 1, 1, 0)] * 3)
