import json
import os
import tempfile
from pathlib import Path

import duckdb
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from landing_helpers import ingest_all, jsonl, seed_catalogue, table, write

from musicrec_assets.warehouse import ingest
from musicrec_assets.warehouse.tables import ensure_schema

pytest_plugins = ["landing_fixtures"]

REJECTED_RATINGS = {
    "malformed JSON": '{"user_id": "ann", "artist_id": ',
    "not a JSON object": "[1, 2]",
    "missing or empty user_id": {"artist_id": "a1", "rating": 3.0},
    "missing or empty artist_id": {"user_id": "ann", "artist_id": "  ", "rating": 3.0},
    "wrong type: user_id must be a string": {"user_id": 1.5, "artist_id": "a1", "rating": 3},
    "wrong type: rating must be a number": {"user_id": "ann", "artist_id": "a1", "rating": "4"},
    "rating outside 0.5-5.0": {"user_id": "ann", "artist_id": "a1", "rating": 5.5},
    "wrong type: plays must be an integer": {"user_id": "ann", "artist_id": "a1", "plays": 2.5},
    "negative plays": {"user_id": "ann", "artist_id": "a1", "plays": -1},
    "plays too large": {"user_id": "ann", "artist_id": "a1", "rating": 3, "plays": 2**63},
    "missing rating and plays": {"user_id": "ann", "artist_id": "a1"},
    "wrong type: timestamp must be epoch seconds or ISO 8601": {
        "user_id": "ann",
        "artist_id": "a1",
        "rating": 3,
        "timestamp": "yesterday",
    },
    ingest.UNKNOWN_USER: {"user_id": "zed", "artist_id": "a1", "rating": 3},
    ingest.UNKNOWN_ARTIST: {"user_id": "ann", "artist_id": "a9", "rating": 3},
}


@pytest.mark.parametrize("reason", sorted(REJECTED_RATINGS))
def test_each_bad_rating_is_rejected_with_its_reason(con, landing_dir, reason):
    seed_catalogue(con, landing_dir)
    good = {"user_id": "bob", "artist_id": "a2", "rating": 4.5}
    write(landing_dir, "ratings/r.jsonl", jsonl(good, REJECTED_RATINGS[reason]))
    [report] = [r for r in ingest_all(con, landing_dir) if not r.skipped]
    assert report.rejected_by_reason == {reason: 1}
    assert table(con, "SELECT record_no, reason FROM rejected_rows") == [(2, reason)]
    assert table(con, "SELECT user_id, artist_id, rating FROM ratings") == [("bob", "a2", 4.5)]


@pytest.mark.parametrize("name", ["x[1].jsonl", "x*.jsonl", "x?.jsonl"])
@pytest.mark.parametrize("bad_record", [False, True], ids=["clean pass", "general path"])
def test_a_file_name_with_glob_characters_is_read_as_itself(con, landing_dir, name, bad_record):
    seed_catalogue(con, landing_dir)
    write(
        landing_dir, "ratings/x1.jsonl", jsonl({"user_id": "ann", "artist_id": "a1", "rating": 1})
    )
    ingest_all(con, landing_dir)
    own = [{"user_id": "bob", "artist_id": "a2", "rating": 5}] + [{"rating": 9}] * bad_record
    write(landing_dir, f"ratings/{name}", jsonl(*own))
    [report] = [r for r in ingest_all(con, landing_dir) if not r.skipped]
    assert (report.path, report.rows_read, report.rows_accepted) == (f"ratings/{name}", len(own), 1)
    assert table(con, "SELECT source_file, user_id FROM ratings ORDER BY 2") == [
        ("ratings/x1.jsonl", "ann"),
        (f"ratings/{name}", "bob"),
    ]


def test_users_and_artists_reasons(con, landing_dir):
    write(
        landing_dir,
        "users/u.jsonl",
        jsonl(
            {"id": "ann", "first_name": "Ann"},
            {"id": ""},
            {"id": True},
            {"first_name": "x"},
            {"id": "cy", "first_name": 7},
            {"id": 42},
        ),
    )
    write(
        landing_dir, "artists/a.jsonl", jsonl({"id": "a1", "name": "X"}, {"id": "a2", "name": []})
    )
    ingest_all(con, landing_dir)
    reasons = dict(table(con, "SELECT kind || ':' || record_no, reason FROM rejected_rows"))
    assert reasons == {
        "users:2": "missing or empty id",
        "users:3": "wrong type: id must be a string",
        "users:4": "missing or empty id",
        "users:5": "wrong type: first_name must be a string",
        "artists:2": "wrong type: name must be a string",
    }
    assert table(con, "SELECT id FROM users ORDER BY id") == [("42",), ("ann",)]


def test_mixed_file_loses_nothing(con, landing_dir):
    """Every bad-row kind mixed into good rows: each row is either accepted or rejected."""
    seed_catalogue(con, landing_dir)
    good = [
        {"user_id": u, "artist_id": a, "rating": 3.5, "plays": 2}
        for u in ("ann", "bob")
        for a in ("a1", "a2")
    ]
    bad = list(REJECTED_RATINGS.values())
    records = [r for pair in zip(good * 4, bad, strict=False) for r in pair] + good
    records.append(good[0])  # a duplicate key within the file
    write(landing_dir, "ratings/mixed.jsonl", jsonl(*records))
    [report] = [r for r in ingest_all(con, landing_dir) if r.kind == "ratings"]
    assert report.rows_read == len(records)
    assert report.rows_read == report.rows_accepted + report.rows_rejected
    rejected = table(con, "SELECT count(*) FROM rejected_rows WHERE kind = 'ratings'")[0][0]
    assert rejected == report.rows_rejected
    ledger = table(
        con,
        "SELECT rows_read, rows_accepted, rows_rejected FROM ingested_files WHERE kind = 'ratings'",
    )
    assert ledger == [(report.rows_read, report.rows_accepted, report.rows_rejected)]
    assert table(con, "SELECT count(*) FROM ratings")[0][0] == 4
    record_numbers = table(con, "SELECT record_no FROM rejected_rows WHERE kind = 'ratings'")
    assert len({n for (n,) in record_numbers}) == report.rows_rejected


# an empty file is the content the clean pass takes whole before it sees the hash
@pytest.mark.parametrize(
    "content", [jsonl({"user_id": "ann", "artist_id": "a1", "rating": 2}), "[]"], ids=str
)
def test_reingesting_the_same_content_changes_nothing(con, landing_dir, content):
    seed_catalogue(con, landing_dir)
    path = write(landing_dir, "ratings/r.jsonl", content)
    ingest_all(con, landing_dir)
    before = table(con, "SELECT * FROM ratings"), table(con, "SELECT * FROM ingested_files")
    os.utime(path, ns=(1, 1))  # a touched file is recognised by its content
    (landing_dir / "ratings" / "copy.jsonl").write_bytes(path.read_bytes())
    assert all(r.skipped for r in ingest_all(con, landing_dir))
    assert (
        table(con, "SELECT * FROM ratings"),
        table(con, "SELECT * FROM ingested_files"),
    ) == before


def test_changed_file_is_a_new_version_and_newest_rating_wins(con, landing_dir):
    seed_catalogue(con, landing_dir)
    path = write(
        landing_dir,
        "ratings/r.jsonl",
        jsonl({"user_id": "ann", "artist_id": "a1", "rating": 2, "timestamp": 2000}),
    )
    ingest_all(con, landing_dir)
    path.write_text(
        jsonl(
            {"user_id": "ann", "artist_id": "a1", "rating": 5, "timestamp": "1970-01-01T00:16:40Z"},
            {"user_id": "ann", "artist_id": "a2", "rating": 1},
        )
    )
    ingest_all(con, landing_dir)
    # the older timestamp (1000 s) loses to the stored 2000 s; the new pair is added
    assert table(con, "SELECT artist_id, rating FROM ratings ORDER BY artist_id") == [
        ("a1", 2.0),
        ("a2", 1.0),
    ]
    assert table(con, "SELECT count(*) FROM ingested_files WHERE path = 'ratings/r.jsonl'") == [
        (2,)
    ]


def test_arrays_gzip_and_iso_timestamps(con, landing_dir):
    seed_catalogue(con, landing_dir)
    write(
        landing_dir,
        "ratings/r.json.gz",
        json.dumps(
            [
                {
                    "user_id": "ann",
                    "artist_id": "a1",
                    "plays": 7,
                    "timestamp": "2024-01-01T10:00:00+02:00",
                },
            ]
        ),
    )
    ingest_all(con, landing_dir)
    [(plays, stamp)] = table(con, 'SELECT plays, "timestamp"::VARCHAR FROM ratings')
    assert (plays, stamp) == (7, "2024-01-01 08:00:00")


def test_malformed_array_is_quarantined_whole(con, landing_dir):
    write(landing_dir, "users/broken.json", '[{"id": "ann"}, {"id": ')
    [report] = ingest_all(con, landing_dir)
    assert (report.rows_read, report.rows_rejected) == (1, 1)
    assert table(con, "SELECT raw, reason FROM rejected_rows") == [
        ('[{"id": "ann"}, {"id": ', "malformed JSON")
    ]


def test_duplicate_within_file_keeps_the_newest(con, landing_dir):
    seed_catalogue(con, landing_dir)
    write(
        landing_dir,
        "ratings/r.jsonl",
        jsonl(
            {"user_id": "ann", "artist_id": "a1", "rating": 1, "timestamp": 20},
            {"user_id": "ann", "artist_id": "a1", "rating": 2, "timestamp": 10},
        ),
    )
    ingest_all(con, landing_dir)
    assert table(con, "SELECT rating FROM ratings") == [(1.0,)]
    assert table(con, "SELECT record_no, reason FROM rejected_rows") == [(2, ingest.DUPLICATE)]


def test_ratings_waiting_for_an_unknown_user_are_accepted_when_it_arrives(con, landing_dir):
    seed_catalogue(con, landing_dir)
    write(
        landing_dir,
        "ratings/r.jsonl",
        jsonl(
            {"user_id": "new", "artist_id": "a1", "rating": 4},
            {"user_id": "ann", "artist_id": "a1", "rating": 3},
        ),
    )
    ingest_all(con, landing_dir)
    assert ingest.retry_pending_ratings(con) == 0
    write(landing_dir, "users/late.jsonl", jsonl({"id": "new"}))
    ingest_all(con, landing_dir)
    assert ingest.retry_pending_ratings(con) == 1
    assert table(con, "SELECT count(*) FROM rejected_rows") == [(0,)]
    assert table(con, "SELECT source_file FROM ratings WHERE user_id = 'new'") == [
        ("ratings/r.jsonl",)
    ]
    ledger = table(
        con,
        "SELECT rows_read, rows_accepted, rows_rejected FROM ingested_files WHERE kind = 'ratings'",
    )
    assert ledger == [(2, 2, 0)]
    assert ingest.retry_pending_ratings(con) == 0


def test_users_upsert_keeps_known_names(con, landing_dir):
    write(
        landing_dir, "users/1.jsonl", jsonl({"id": "ann", "first_name": "Ann", "last_name": "Lee"})
    )
    ingest_all(con, landing_dir)
    write(landing_dir, "users/2.jsonl", jsonl({"id": "ann", "last_name": "Li"}))
    ingest_all(con, landing_dir)
    assert table(con, "SELECT id, first_name, last_name FROM users") == [("ann", "Ann", "Li")]


CLEAN_RATING = {"user_id": "ann", "artist_id": "a1", "rating": 3}


@pytest.mark.parametrize(
    "records",
    [[CLEAN_RATING], [CLEAN_RATING, {"user_id": "ann", "artist_id": "a2", "rating": 9}]],
    ids=["clean file", "file with a rejected row"],
)
def test_a_failing_file_leaves_nothing_half_written(con, landing_dir, monkeypatch, records):
    seed_catalogue(con, landing_dir)
    write(landing_dir, "ratings/r.jsonl", jsonl(*records))

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    # the last write of both paths, after the rows are in
    monkeypatch.setattr(ingest.ledger, "record", fail)
    with pytest.raises(RuntimeError):
        ingest_all(con, landing_dir)
    assert table(con, "SELECT count(*) FROM ingested_files WHERE kind = 'ratings'") == [(0,)]
    assert table(con, "SELECT count(*) FROM ratings") == [(0,)]
    assert table(con, "SELECT count(*) FROM rejected_rows") == [(0,)]
    monkeypatch.undo()
    ingest_all(con, landing_dir)
    assert table(con, "SELECT count(*) FROM ratings") == [(1,)]


def test_a_clean_file_is_inserted_in_one_pass(con, landing_dir, monkeypatch):
    seed_catalogue(con, landing_dir)
    write(landing_dir, "ratings/r.jsonl", jsonl(CLEAN_RATING, {**CLEAN_RATING, "artist_id": "a2"}))

    def no_second_pass(*args, **kwargs):
        raise AssertionError("a clean file must not need the general path")

    monkeypatch.setattr(ingest.general_path, "parse_typed", no_second_pass)
    (report,) = ingest_all(con, landing_dir)[-1:]
    assert (report.rows_read, report.rows_accepted, report.rows_rejected) == (2, 2, 0)
    assert table(con, "SELECT artist_id, rating FROM ratings ORDER BY 1") == [
        ("a1", 3.0),
        ("a2", 3.0),
    ]


def test_the_clean_pass_keeps_the_newest_rating_of_a_stored_pair(con, landing_dir, monkeypatch):
    seed_catalogue(con, landing_dir)
    stored = [
        {"user_id": "ann", "artist_id": "a1", "rating": 1, "timestamp": 100},
        {"user_id": "ann", "artist_id": "a2", "rating": 1, "timestamp": 300},
        {"user_id": "bob", "artist_id": "a1", "rating": 1},
    ]
    write(landing_dir, "ratings/1.jsonl", jsonl(*stored))
    ingest_all(con, landing_dir)
    newer = [
        {"user_id": "ann", "artist_id": "a1", "rating": 5, "timestamp": 200},  # newer: wins
        {"user_id": "ann", "artist_id": "a2", "rating": 5, "timestamp": 200},  # older: loses
        {"user_id": "bob", "artist_id": "a1", "rating": 5},  # no timestamps: the later file
        {"user_id": "bob", "artist_id": "a2", "rating": 5, "timestamp": 100},  # a new pair
    ]
    write(landing_dir, "ratings/2.jsonl", jsonl(*newer))
    monkeypatch.setattr(
        ingest.general_path, "parse_typed", lambda *args: pytest.fail("took the general path")
    )
    report = ingest_all(con, landing_dir)[-1]
    assert (report.rows_read, report.rows_accepted, report.rows_rejected) == (4, 4, 0)
    assert table(con, "SELECT user_id, artist_id, rating FROM ratings ORDER BY 1, 2") == [
        ("ann", "a1", 5.0),
        ("ann", "a2", 1.0),
        ("bob", "a1", 5.0),
        ("bob", "a2", 5.0),
    ]


@pytest.mark.parametrize(
    "second_file",
    [
        # a record that fails, a key repeated within the file, and ids that may not pass
        [{**CLEAN_RATING, "artist_id": "a2", "rating": 4}, {**CLEAN_RATING, "rating": 0}],
        [{**CLEAN_RATING, "artist_id": "a2", "rating": 4}, {**CLEAN_RATING, "artist_id": "a2"}],
        [{**CLEAN_RATING, "artist_id": "a2", "rating": 4}, {**CLEAN_RATING, "user_id": "zed"}],
        [{**CLEAN_RATING, "artist_id": "a2", "rating": 4}, {**CLEAN_RATING, "user_id": 1.5}],
    ],
    ids=["rejected record", "repeated key", "unknown id", "id not a string"],
)
def test_the_clean_pass_rolls_back_what_it_cannot_take(con, landing_dir, second_file):
    other = con.cursor()  # another connection to the same database
    con.execute("SET SESSION preserve_insertion_order = false")
    seed_catalogue(con, landing_dir)
    write(landing_dir, "ratings/1.jsonl", jsonl(CLEAN_RATING))
    ingest_all(con, landing_dir)
    write(landing_dir, "ratings/2.jsonl", jsonl(*second_file))
    report = ingest_all(con, landing_dir)[-1]
    ratings = table(con, "SELECT artist_id, count(*) FROM ratings GROUP BY 1 ORDER BY 1")
    # each pair once, nothing from the rolled-back attempt
    assert ratings == [("a1", 1), ("a2", 1)]
    assert report.rows_read == 2 == report.rows_accepted + report.rows_rejected
    # the general path kept order while it numbered records, the clean pass let go of it:
    # both only for the ingest, and only on the ingest's connection
    setting = "SELECT current_setting('preserve_insertion_order')"
    assert table(con, setting) == [(False,)] and table(other, setting) == [(True,)]


def test_values_from_data_are_never_sql(con, landing_dir):
    seed_catalogue(con, landing_dir)
    evil = "x'); DROP TABLE users; --"
    write(landing_dir, "users/evil'name.jsonl", jsonl({"id": evil, "first_name": evil}))
    ingest_all(con, landing_dir)
    assert (evil,) in table(con, "SELECT id FROM users")


# Known ids, and values of other JSON types whose text is one of them: the clean pass reads
# ids as VARCHAR, where 12 and "12", or true and "true", look alike
KNOWN_IDS = ["ann", "12", "-5", "true", "[1]", "1.5", "100000000000000000000", " x"]
LOOKALIKES = [12, -5, True, [1], 1.5, 100000000000000000000, 1e20]
ANY_JSON = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=3),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(["a", "b"]), st.integers(), max_size=1),
)

VALID = {
    "id": st.sampled_from(KNOWN_IDS),
    "user_id": st.sampled_from(KNOWN_IDS),
    "artist_id": st.sampled_from(KNOWN_IDS),
    "first_name": st.just("Ann"),
    "last_name": st.just("Lee"),
    "rating": st.sampled_from([0.5, 3, 4.5, 5.0]),
    "plays": st.sampled_from([0, 7, 2.0]),
    "timestamp": st.sampled_from([1_600_000_000, 1_700_000_000, 1.7e9, "2024-05-01T10:00:00Z"]),
}
# stored ratings for some pairs the records may bring again, older, newer or undated
STORED_RATINGS = [
    [user, artist, 1.0, timestamp]
    for (user, artist), timestamp in zip(
        [(u, a) for u in KNOWN_IDS[:3] for a in KNOWN_IDS[:3]],
        ["2023-11-14 22:13:20", None, "2022-04-20 00:00:00"] * 3,
        strict=True,
    )
]
ODD_ID = st.one_of(st.sampled_from(LOOKALIKES), st.sampled_from(["", "  ", "zed"]), ANY_JSON)
ODD = {
    "id": ODD_ID,
    "user_id": ODD_ID,
    "artist_id": ODD_ID,
    "first_name": ANY_JSON,
    "last_name": ANY_JSON,
    "rating": st.one_of(st.sampled_from(["4.5", True, 9, -0.0]), ANY_JSON),
    "plays": st.one_of(st.sampled_from(["7", True, 2.5, -1]), ANY_JSON),
    "timestamp": st.one_of(st.sampled_from(["1700000000", True, "yesterday"]), ANY_JSON),
}
MISSING = object()


@st.composite
def files_of(draw, kind: str) -> list[dict]:
    """One to three records, each valid but for at most one field, which is odd or missing."""
    records = []
    for _ in range(draw(st.integers(1, 3))):
        record = {name: draw(VALID[name]) for name in ingest.FIELDS[kind]}
        odd_field = draw(st.sampled_from([None, *ingest.FIELDS[kind]]))
        if odd_field is not None:
            value = draw(st.one_of(ODD[odd_field], st.just(MISSING)))
            record[odd_field] = value
            if value is MISSING:
                del record[odd_field]
        records.append(record)
    return records


def outcome(records: list[dict], kind: str, clean_pass: bool):
    """What ingesting ``records`` leaves: the kind's table, and the rejected rows."""
    with tempfile.TemporaryDirectory() as scratch, duckdb.connect() as con:
        ensure_schema(con)
        for catalogue in ("users", "artists"):
            con.executemany(
                f"INSERT INTO {catalogue} (id, source_file, ingested_at) VALUES (?, 'seed', now())",
                [[i] for i in KNOWN_IDS],
            )
        con.executemany(
            "INSERT INTO ratings (user_id, artist_id, rating, timestamp, source_file, ingested_at)"
            " VALUES (?, ?, ?, ?, 'seed', now())",
            STORED_RATINGS,
        )
        write(Path(scratch), f"{kind}/new.jsonl", jsonl(*records))
        with pytest.MonkeyPatch.context() as patch:
            if not clean_pass:
                patch.setattr(ingest.clean_pass, "try_ingest", lambda *args: False)
            ingest_all(con, Path(scratch))
        columns = ", ".join(ingest.FIELDS[kind])
        rows = table(con, f"SELECT {columns}, source_file FROM {kind}")
        rejected = table(con, "SELECT record_no, reason FROM rejected_rows ORDER BY record_no")
        return sorted(rows, key=repr), rejected


@settings(max_examples=60, deadline=None)
@given(files_of("ratings"))
@example([{"user_id": 1.5, "artist_id": "ann", "rating": 3}])
@example([{"user_id": "zed", "artist_id": "ann", "rating": 3}])
@example([{"user_id": "ann", "artist_id": True, "rating": 3}])
@example([{"user_id": 12, "artist_id": "[1]", "rating": 3}])
@example([{"user_id": "ann", "artist_id": "ann", "rating": "4.5", "plays": 7}])
def test_the_clean_pass_agrees_with_the_general_path_on_ratings(records):
    assert outcome(records, "ratings", True) == outcome(records, "ratings", False)


@settings(max_examples=30, deadline=None)
@given(files_of("users"))
@example([{"id": [1]}, {"id": "ann"}])
def test_the_clean_pass_agrees_with_the_general_path_on_users(records):
    assert outcome(records, "users", True) == outcome(records, "users", False)
