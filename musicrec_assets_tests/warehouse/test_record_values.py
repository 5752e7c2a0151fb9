"""Values at the edges: times that are not finite, ids of Unicode spaces, play counts near
2^63. A file with a rejected record leaves the clean pass, so a rejection tells that the
clean pass did not take the record either."""

import pytest
from landing_helpers import GOOD_RATING, ingest_all, jsonl, seed_catalogue, table, write

from musicrec_assets.warehouse.ingest.fields import NOT_FINITE_TIMESTAMP

pytest_plugins = ["landing_fixtures"]

# a record that no path accepts sends the file down the general path
FORCES_THE_GENERAL_PATH = ['{"user_id": "bob", "artist_id": "a2", "rating": 99}']


def rating_line(**fields) -> str:
    """A rating record as JSON text, with each value given as its own JSON text."""
    return "{" + ", ".join(f'"{name}": {value}' for name, value in fields.items()) + "}"


def reasons(con) -> list:
    return table(con, "SELECT reason FROM rejected_rows WHERE record_no = 1")


@pytest.mark.parametrize(
    "timestamp, reason",
    [
        ('"infinity"', NOT_FINITE_TIMESTAMP),
        ('"-infinity"', NOT_FINITE_TIMESTAMP),
        ("NaN", NOT_FINITE_TIMESTAMP),
        ("Infinity", NOT_FINITE_TIMESTAMP),
        ("-Infinity", NOT_FINITE_TIMESTAMP),
        ('"NaN"', "wrong type: timestamp must be epoch seconds or ISO 8601"),
    ],
)
def test_a_time_that_is_not_finite_is_rejected(con, landing_dir, timestamp, reason):
    seed_catalogue(con, landing_dir)
    record = rating_line(user_id='"ann"', artist_id='"a2"', rating=3, timestamp=timestamp)
    write(landing_dir, "ratings/r.jsonl", jsonl(record, GOOD_RATING))
    ingest_all(con, landing_dir)
    assert reasons(con) == [(reason,)]
    assert table(con, "SELECT artist_id FROM ratings") == [("a1",)]


@pytest.mark.parametrize("blank", ["\u00a0", "\u2003", " \u3000\t", "\u2028", "\u0085"])
def test_an_id_of_unicode_spaces_is_blank(con, landing_dir, blank):
    seed_catalogue(con, landing_dir)
    write(landing_dir, "ratings/r.jsonl", jsonl({**GOOD_RATING, "user_id": blank}, GOOD_RATING))
    write(landing_dir, "users/blank.jsonl", jsonl({"id": blank}, {"id": "\u00a0x"}))
    ingest_all(con, landing_dir)
    assert table(con, "SELECT kind, reason FROM rejected_rows WHERE record_no = 1") == [
        ("users", "missing or empty id"),
        ("ratings", "missing or empty user_id"),
    ]
    assert table(con, "SELECT id FROM users ORDER BY id") == [("ann",), ("bob",), ("\u00a0x",)]


@pytest.mark.parametrize("path", [[], FORCES_THE_GENERAL_PATH], ids=["clean", "general"])
def test_play_counts_are_exact_up_to_2_63_minus_1(con, landing_dir, path):
    seed_catalogue(con, landing_dir)
    exact = [
        rating_line(user_id='"ann"', artist_id='"a1"', plays=2**53 + 1),
        rating_line(user_id='"ann"', artist_id='"a2"', plays=2**63 - 1),
    ]
    write(landing_dir, "ratings/1.jsonl", jsonl(*exact, *path))
    write(
        landing_dir, "ratings/2.jsonl", rating_line(user_id='"ann"', artist_id='"a1"', plays=2**63)
    )
    ingest_all(con, landing_dir)
    assert table(con, "SELECT artist_id, plays FROM ratings ORDER BY 1") == [
        ("a1", 2**53 + 1),
        ("a2", 2**63 - 1),
    ]
    assert reasons(con) == [("plays too large",)]
