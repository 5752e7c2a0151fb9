"""An artist record's ``tags``: validated like every field, normalised, stored in
``artist_tags``; the clean pass and the general path agree."""

import json
import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from landing_helpers import ingest_all, jsonl, table, write
from scipy.sparse import csr_matrix

from musicrec_assets.model.factors import ModelPair, TrainingParams
from musicrec_assets.model.fitters import fit_local
from musicrec_assets.warehouse import ingest
from musicrec_assets.warehouse.artist_tags import cold_artist_factors
from musicrec_assets.warehouse.ingest.fields import NEGATIVE_TAG_WEIGHT, WRONG_TAGS
from musicrec_assets.warehouse.tables import ensure_schema

pytest_plugins = ["landing_fixtures"]

TAGS = "SELECT artist_id, tag, weight FROM artist_tags ORDER BY ALL"


def test_listed_and_weighted_tags_are_stored_normalised(con, landing_dir):
    write(
        landing_dir,
        "artists/a.jsonl",
        jsonl(
            {"id": "a1", "tags": ["Post-Rock", "  icelandic\u00a0 folk ", "post-rock"]},
            {"id": "a2", "tags": {"Rock": 12, "ROCK ": 3, "jazz": 0.5, "noise": 0, "  ": 4}},
            {"id": "a3", "name": "no tags"},
            {"id": "a4", "tags": []},
            {"id": "a5", "tags": None},
        ),
    )
    [report] = ingest_all(con, landing_dir)
    assert (report.rows_read, report.rows_accepted, report.rows_rejected) == (5, 5, 0)
    assert table(con, TAGS) == [
        ("a1", "icelandic folk", 1.0),
        ("a1", "post-rock", 1.0),  # listed twice, once as written: weight 1
        ("a2", "jazz", 0.5),
        ("a2", "rock", 15.0),  # weights of one tag add up; zero weights and blanks dropped
    ]
    assert table(con, "SELECT count(*) FROM artists") == [(5,)]


BAD_TAGS = {
    "string": "rock",
    "number": 7,
    "list of numbers": ["rock", 1],
    "nested list": [["rock"]],
    "object of strings": {"rock": "many"},
    "object of objects": {"rock": {"n": 1}},
    "boolean weight": {"rock": True},
    "true": True,
}


@pytest.mark.parametrize("clean", [True, False], ids=["clean pass", "general path"])
def test_wrong_tags_reject_the_record_with_its_reason(con, landing_dir, monkeypatch, clean):
    if not clean:
        monkeypatch.setattr(ingest.clean_pass, "try_ingest", lambda *args: False)
    records = [{"id": f"bad-{name}", "tags": value} for name, value in BAD_TAGS.items()]
    records += [{"id": "negative", "tags": {"rock": -1}}, {"id": "good", "tags": ["rock"]}]
    write(landing_dir, "artists/a.jsonl", jsonl(*records))
    ingest_all(con, landing_dir)
    reasons = table(con, "SELECT record_no, reason FROM rejected_rows ORDER BY record_no")
    assert reasons == [(i, WRONG_TAGS) for i in range(1, len(BAD_TAGS) + 1)] + [
        (len(BAD_TAGS) + 1, NEGATIVE_TAG_WEIGHT)
    ]
    assert table(con, "SELECT id FROM artists") == [("good",)]
    assert table(con, TAGS) == [("good", "rock", 1.0)]


def test_a_newer_record_with_tags_replaces_them_and_one_without_keeps_them(con, landing_dir):
    write(landing_dir, "artists/1.jsonl", jsonl({"id": "a1", "tags": ["rock", "pop"]}))
    write(landing_dir, "artists/2.jsonl", jsonl({"id": "a1", "name": "renamed"}))
    ingest_all(con, landing_dir)
    assert table(con, TAGS) == [("a1", "pop", 1.0), ("a1", "rock", 1.0)]
    write(landing_dir, "artists/3.jsonl", jsonl({"id": "a1", "tags": {"jazz": 2}}))
    ingest_all(con, landing_dir)
    assert table(con, TAGS) == [("a1", "jazz", 2.0)]
    write(landing_dir, "artists/4.jsonl", jsonl({"id": "a1", "tags": []}))
    ingest_all(con, landing_dir)
    assert table(con, TAGS) == []
    assert table(con, "SELECT name FROM artists") == [("renamed",)]


TAG_VALUES = st.one_of(
    st.lists(st.sampled_from(["Rock", "rock ", "jazz", " ", "Folk  Pop"]), max_size=4),
    st.dictionaries(
        st.sampled_from(["Rock", "rock", "jazz", "", "noise"]),
        st.one_of(st.integers(-2, 20), st.floats(0, 10), st.booleans(), st.text(max_size=2)),
        max_size=4,
    ),
    st.sampled_from([None, "rock", 3, [1], [["a"]]]),
)


def outcome(records: list[dict], clean_pass: bool):
    with tempfile.TemporaryDirectory() as scratch, duckdb.connect() as con:
        ensure_schema(con)
        write(Path(scratch), "artists/new.jsonl", jsonl(*records))
        with pytest.MonkeyPatch.context() as patch:
            if not clean_pass:
                patch.setattr(ingest.clean_pass, "try_ingest", lambda *args: False)
            ingest_all(con, Path(scratch))
        rejected = table(con, "SELECT record_no, reason FROM rejected_rows ORDER BY record_no")
        return table(con, TAGS), table(con, "SELECT id FROM artists ORDER BY id"), rejected


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), TAG_VALUES), min_size=1, max_size=3))
@example([("a", {"rock": 1e308, "Rock": 1e308})])
def test_the_clean_pass_agrees_with_the_general_path_on_tags(pairs):
    records = [{"id": artist, "tags": tags} for artist, tags in pairs]
    assert outcome(records, True) == outcome(records, False)
    json.dumps(records)  # what was written is what was read


def test_tags_on_fewer_artists_than_min_tag_artists_are_left_out():
    rng = np.random.default_rng(0)
    plays = csr_matrix((rng.random((60, 40)) < 0.2).astype(np.float32))
    params = TrainingParams(
        "ranking", rank=4, regularization=0.5, iterations=3, confidence="log1p", alpha=2.0
    )
    artists = np.array([f"a{i}" for i in range(40)])
    pair = ModelPair(fit_local(plays, params).with_ids(np.arange(60).astype(str), artists))
    con = duckdb.connect()
    ensure_schema(con)
    # t0 on 14 trained artists, t1 and t2 on 13; the new artist carries t0
    tagged = [(artist, f"t{i % 3}", 1.0) for i, artist in enumerate(artists)]
    con.executemany("INSERT INTO artist_tags VALUES (?, ?, ?)", [*tagged, ("new", "t0", 1.0)])

    def reason(min_tag_artists: int) -> str:
        _, result = cold_artist_factors(con, pair, plays, min_tag_artists=min_tag_artists)
        return result.reason

    assert reason(14).startswith("withheld")  # t0 kept (14 artists): the protocol judges
    assert reason(15).startswith("no cold-artist protocol") and "0 tags" in reason(15)
