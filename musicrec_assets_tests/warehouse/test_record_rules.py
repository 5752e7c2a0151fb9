"""Rules on a record's content: ids without control characters, each field given once,
ratings in half stars; and ids compared exactly as written."""

import json
import unicodedata

import pytest
from landing_helpers import GOOD_RATING, ingest_all, jsonl, seed_catalogue, table, write

from musicrec_assets.warehouse.ingest.fields import (
    NOT_HALF_STARS,
    REPEATED_FIELD,
    control_character,
)

pytest_plugins = ["landing_fixtures"]


def reasons(con) -> list:
    return table(con, "SELECT kind, record_no, reason FROM rejected_rows ORDER BY kind, record_no")


@pytest.mark.parametrize("control", ["\u0000", "\u0007", "\n", "\u007f", "\u009b"])
@pytest.mark.parametrize("where", ["end", "middle"])
def test_an_id_with_a_control_character_is_rejected_before_it_is_stored(
    con, landing_dir, control, where
):
    """A NUL dropped or cut by numpy's strings made ``dup\\0`` and ``dup`` one user; every
    record here is otherwise clean, so the clean pass has to send the file on by itself."""
    seed_catalogue(con, landing_dir)
    bad = f"dup{control}" if where == "end" else f"d{control}up"
    write(landing_dir, "users/more.jsonl", jsonl({"id": "dup"}, {"id": bad}))
    write(landing_dir, "artists/more.jsonl", jsonl({"id": bad, "name": "X"}))
    write(
        landing_dir,
        "ratings/r.jsonl",
        jsonl({**GOOD_RATING, "user_id": bad}, {**GOOD_RATING, "artist_id": bad}, GOOD_RATING),
    )
    ingest_all(con, landing_dir)
    assert reasons(con) == [
        ("artists", 1, control_character("id")),
        ("ratings", 1, control_character("user_id")),
        ("ratings", 2, control_character("artist_id")),
        ("users", 2, control_character("id")),
    ]
    assert table(con, "SELECT id FROM users ORDER BY id") == [("ann",), ("bob",), ("dup",)]
    assert table(con, "SELECT user_id, artist_id FROM ratings") == [("ann", "a1")]


def test_format_characters_and_emoji_stay_allowed_in_ids(con, landing_dir):
    allowed = ["\u200fmark", "zero\u200bwidth", "🎸"]
    write(landing_dir, "users/u.jsonl", jsonl(*({"id": user} for user in allowed)))
    ingest_all(con, landing_dir)
    assert sorted(table(con, "SELECT id FROM users")) == sorted((user,) for user in allowed)
    assert reasons(con) == []


@pytest.mark.parametrize("array", [False, True], ids=["lines", "array"])
def test_a_record_that_gives_a_field_twice_is_rejected(con, landing_dir, array):
    """Ingest kept the first value and `recommend --ratings` the last: the record is
    ambiguous, so it is rejected; a repeated key that is no field of ours is never read."""
    seed_catalogue(con, landing_dir)
    records = [
        '{"user_id": "ann", "artist_id": "a1", "rating": 1, "rating": 5}',
        '{"user_id": "ann", "user_id": "bob", "artist_id": "a2", "rating": 3}',
        '{"user_id": "bob", "artist_id": "a1", "rating": 2, "note": 1, "note": 2}',
    ]
    content = "[" + ",\n".join(records) + "]" if array else "\n".join(records) + "\n"
    write(landing_dir, "ratings/r.json" if array else "ratings/r.jsonl", content)
    ingest_all(con, landing_dir)
    assert reasons(con) == [("ratings", 1, REPEATED_FIELD), ("ratings", 2, REPEATED_FIELD)]
    assert table(con, "SELECT user_id, artist_id, rating FROM ratings") == [("bob", "a1", 2.0)]


@pytest.mark.parametrize("rating", [4.50000000001, 4.4999999999, 0.75, 3.3])
def test_a_rating_between_half_stars_is_rejected(con, landing_dir, rating):
    seed_catalogue(con, landing_dir)
    write(landing_dir, "ratings/r.jsonl", jsonl({**GOOD_RATING, "rating": rating}, GOOD_RATING))
    ingest_all(con, landing_dir)
    assert reasons(con) == [("ratings", 1, NOT_HALF_STARS)]


def test_ids_are_compared_exactly_as_written(con, landing_dir):
    """The rule: no normalisation. ``café`` composed (NFC) and decomposed (NFD) are two ids,
    as they are two strings in every table and on the command line."""
    composed = unicodedata.normalize("NFC", "café")
    decomposed = unicodedata.normalize("NFD", "café")
    assert composed != decomposed
    write(landing_dir, "users/u.json", json.dumps([{"id": composed}, {"id": decomposed}]))
    ingest_all(con, landing_dir)
    assert sorted(table(con, "SELECT id FROM users")) == sorted([(composed,), (decomposed,)])


@pytest.mark.parametrize("depth", [2_000, 100_000])
@pytest.mark.parametrize("inside", ["array", "object"])
def test_a_deeply_nested_element_rejects_only_itself(con, landing_dir, depth, inside):
    """Python's JSON scanner recurses: past its limit the whole array was one rejected record
    and the good rating beside the deep element was lost."""
    seed_catalogue(con, landing_dir)
    deep = '{"a": ' * depth + '"]}\\""' + "}" * depth if inside == "object" else None
    deep = deep or "[" * depth + '"]}\\""' + "]" * depth
    elements = [json.dumps(GOOD_RATING), deep, '{"user_id": "bob", "artist_id": "a2", "rating": 2}']
    write(landing_dir, "ratings/r.json", "[" + ", ".join(elements) + "]")
    ingest_all(con, landing_dir)
    expected = "not a JSON object" if inside == "array" else "missing or empty user_id"
    assert reasons(con) == [("ratings", 2, expected)]
    assert table(con, "SELECT user_id FROM ratings ORDER BY 1") == [("ann",), ("bob",)]
