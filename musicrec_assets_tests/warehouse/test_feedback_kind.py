"""A home holds ratings or play counts, decided once: by the setting, else by its first ratings
file. A record of the other kind is rejected with its reason, so one stray rating never turns
a home of play counts into one of ratings, and a played artist never passes for a rated one."""

import pytest
from landing_helpers import ingest_all, jsonl, seed_catalogue, table, write

from musicrec_assets.warehouse import feedback_kind
from musicrec_assets.warehouse.ingest.fields import NO_PLAYS, NO_RATING
from musicrec_assets.warehouse.interactions import resolve_feedback

pytest_plugins = ["landing_fixtures"]

PLAYS = [
    {"user_id": "ann", "artist_id": "a1", "plays": 12},
    {"user_id": "bob", "artist_id": "a1", "plays": 3},
    {"user_id": "bob", "artist_id": "a2", "plays": 40},
]
STRAY_RATING = {"user_id": "ann", "artist_id": "a2", "rating": 4.5}


def rejected(con) -> list:
    return table(con, "SELECT source_file, record_no, reason FROM rejected_rows ORDER BY 1, 2")


@pytest.mark.parametrize(
    "first_file", [PLAYS, [*PLAYS, STRAY_RATING]], ids=["clean", "with the stray rating"]
)
def test_one_stray_rating_in_a_home_of_play_counts_is_a_rejected_row(con, landing_dir, first_file):
    seed_catalogue(con, landing_dir)
    write(landing_dir, "ratings/1.jsonl", jsonl(*first_file))
    write(landing_dir, "ratings/2.jsonl", jsonl(STRAY_RATING, {**PLAYS[0], "artist_id": "a2"}))
    ingest_all(con, landing_dir)
    assert feedback_kind.decided(con) == "implicit"
    assert ("ratings/2.jsonl", 1, NO_PLAYS) in rejected(con)
    assert table(con, "SELECT count(rating) FROM ratings") == [(0,)]
    # and training takes the home as it is: play counts
    assert resolve_feedback(con, "auto") == "implicit"


def test_a_plays_only_row_in_a_home_of_ratings_is_rejected(con, landing_dir):
    seed_catalogue(con, landing_dir)
    ratings = [{"user_id": "ann", "artist_id": "a1", "rating": 4.0, "plays": 3}]
    write(landing_dir, "ratings/1.jsonl", jsonl(*ratings))
    write(landing_dir, "ratings/2.jsonl", jsonl({"user_id": "ann", "artist_id": "a2", "plays": 9}))
    ingest_all(con, landing_dir)
    assert feedback_kind.decided(con) == "explicit"
    assert rejected(con) == [("ratings/2.jsonl", 1, NO_RATING)]
    assert table(con, "SELECT artist_id, rating, plays FROM ratings") == [("a1", 4.0, 3)]


def test_the_first_file_decides_by_what_most_of_its_records_carry(con, landing_dir):
    seed_catalogue(con, landing_dir)
    records = [
        {"user_id": "ann", "artist_id": "a1", "rating": 4.0},
        {"user_id": "bob", "artist_id": "a1", "rating": 2.5, "plays": 3},
        {"user_id": "bob", "artist_id": "a2", "plays": 7},
    ]
    write(landing_dir, "ratings/1.jsonl", jsonl(*records))
    ingest_all(con, landing_dir)
    assert table(con, "SELECT kind, decided_by FROM feedback_kind") == [
        ("explicit", "the first ratings file, ratings/1.jsonl")
    ]
    assert rejected(con) == [("ratings/1.jsonl", 3, NO_RATING)]


def test_the_setting_decides_before_the_first_file(con, landing_dir):
    seed_catalogue(con, landing_dir)
    feedback_kind.settle(con, "implicit")
    write(landing_dir, "ratings/1.jsonl", jsonl(STRAY_RATING, PLAYS[0]))
    ingest_all(con, landing_dir)
    assert rejected(con) == [("ratings/1.jsonl", 1, NO_PLAYS)]
    with pytest.raises(ValueError, match="explicit in the settings, but this home holds play"):
        feedback_kind.settle(con, "explicit")
