"""Files that cannot be read, and lines that cannot be parsed: the file is recorded as failed,
or only the bad records are rejected, each with its own text; nothing else stops."""

import gzip
import json

import pytest
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
from musicrec_assets.warehouse.ingest import records

pytest_plugins = ["landing_fixtures"]

LATIN1_LINE = '{"user_id": "bob", "artist_id": "a2", "rating": 3, "note": "café"}'.encode("latin-1")


def ledger(con):
    return table(
        con,
        """SELECT path, rows_read, rows_accepted, rows_rejected, failure FROM ingested_files
           WHERE kind = 'ratings' ORDER BY ingested_at""",
    )


def truncated_gzip() -> bytes:
    whole = gzip.compress(jsonl(*[GOOD_RATING] * 2000).encode())
    return whole[: len(whole) // 2]


UNREADABLE = {
    "not gzip": (b"plain text, not gzip\n", "not a gzip file"),
    "truncated": (truncated_gzip(), "the gzip stream ends early (truncated)"),
    "empty": (b"", "an empty file, not a gzip stream"),
}


@pytest.mark.parametrize("name", ["ratings/1.jsonl.gz", "ratings/1.json.gz"])
@pytest.mark.parametrize("case", sorted(UNREADABLE))
def test_a_file_that_cannot_be_read_is_recorded_as_failed_and_the_next_goes_in(
    con, landing_dir, case, name
):
    seed_catalogue(con, landing_dir)
    content, reason = UNREADABLE[case]
    bad = write_exactly(landing_dir, name, content)
    write(landing_dir, "ratings/2.jsonl", jsonl(GOOD_RATING))
    failed, good = ingest_all(con, landing_dir)[-2:]
    assert failed.failure.startswith(f"{name}: {reason}") and "\n" not in failed.failure
    assert (good.rows_accepted, good.failure) == (1, None)
    assert ledger(con) == [(name, 0, 0, 0, failed.failure), ("ratings/2.jsonl", 1, 1, 0, None)]
    assert table(con, "SELECT count(*) FROM rejected_rows") == [(0,)]

    # not read again while it stays as it is, under any name
    bad.with_name("copy-" + bad.name).write_bytes(content)
    assert all(report.skipped for report in ingest_all(con, landing_dir))
    assert len(ledger(con)) == 2

    # and tried again once its content changes
    write(landing_dir, name, jsonl({**GOOD_RATING, "artist_id": "a2"}))
    ingest_all(con, landing_dir)
    assert ledger(con)[-1] == (name, 1, 1, 0, None)
    assert table(con, "SELECT artist_id FROM ratings ORDER BY 1") == [("a1",), ("a2",)]


def test_a_bad_gzip_a_latin1_line_and_a_good_file(con, landing_dir):
    """The issue's "done when": the good rows in ratings, exactly the bad ones rejected."""
    seed_catalogue(con, landing_dir)
    write_exactly(landing_dir, "ratings/1-bad.jsonl.gz", b"\x1f\x8b but not gzip")
    good_lines = jsonl({**GOOD_RATING, "artist_id": "a2"}).encode()
    write(landing_dir, "ratings/2-latin1.jsonl", good_lines + LATIN1_LINE + b"\n")
    write(
        landing_dir,
        "ratings/3-good.jsonl.gz",
        jsonl(GOOD_RATING, {**GOOD_RATING, "user_id": "bob"}),
    )
    ingest.retry_pending_ratings(con)
    ingest_all(con, landing_dir)
    assert table(con, "SELECT user_id, artist_id, source_file FROM ratings ORDER BY ALL") == [
        ("ann", "a1", "ratings/3-good.jsonl.gz"),
        ("ann", "a2", "ratings/2-latin1.jsonl"),
        ("bob", "a1", "ratings/3-good.jsonl.gz"),
    ]
    assert table(con, "SELECT source_file, record_no, raw, reason FROM rejected_rows") == [
        (
            "ratings/2-latin1.jsonl",
            2,
            '{"user_id": "bob", "artist_id": "a2", "rating": 3, "note": "caf\\xe9"}',
            records.INVALID_UTF8,
        )
    ]
    [failed] = table(con, "SELECT path, failure FROM ingested_files WHERE failure IS NOT NULL")
    assert failed[0] == "ratings/1-bad.jsonl.gz" and failed[1].startswith(failed[0])


def test_json_lines_are_validated_line_by_line(con, landing_dir):
    seed_catalogue(con, landing_dir)
    valid_but_long = json.dumps({**GOOD_RATING, "artist_id": "a2", "comment": "x" * 3_000_000})
    lines = [
        json.dumps(GOOD_RATING).encode(),
        b"",
        LATIN1_LINE,
        b'{"user_id": "bob", "artist_id": ',
        b"   \r",
        valid_but_long.encode(),
        b'{"user_id": "bob", "comment": "' + b"y" * 2_500_000 + b'", "artist_id": ',
        json.dumps({"user_id": "bob", "artist_id": "a1", "rating": 2}).encode() + b"\r",
        b'{"user_id": "bob"\x00}',
    ]
    write(landing_dir, "ratings/r.jsonl", b"\n".join(lines))
    report = ingest_all(con, landing_dir)[-1]
    assert (report.rows_read, report.rows_accepted, report.rows_rejected) == (7, 3, 4)
    rejected = table(con, "SELECT record_no, reason, left(raw, 40) FROM rejected_rows ORDER BY 1")
    assert rejected == [
        (3, records.INVALID_UTF8, LATIN1_LINE[:40].decode()),
        (4, "malformed JSON", '{"user_id": "bob", "artist_id": '),
        (7, "malformed JSON", '{"user_id": "bob", "comment": "yyyyyyyyy'),
        (9, "malformed JSON", '{"user_id": "bob"\x00}'),
    ]
    assert table(con, "SELECT length(raw) FROM rejected_rows WHERE record_no = 7") == [
        (len(lines[6]),)
    ]
    assert table(con, "SELECT user_id, artist_id FROM ratings ORDER BY ALL") == [
        ("ann", "a1"),
        ("ann", "a2"),
        ("bob", "a1"),
    ]


def test_a_record_over_the_limit_keeps_its_start(con, landing_dir, monkeypatch):
    monkeypatch.setattr(records, "BLOCK_BYTES", 1000)
    monkeypatch.setattr(records, "MAX_RECORD_BYTES", 5000)
    monkeypatch.setattr(records, "KEPT_BYTES_OF_LONG_RECORD", 100)
    seed_catalogue(con, landing_dir)
    long_line = json.dumps({**GOOD_RATING, "artist_id": "a2", "comment": "z" * 20_000})
    write(landing_dir, "ratings/r.jsonl", jsonl(long_line, "{bad", GOOD_RATING))
    ingest_all(con, landing_dir)
    assert table(con, "SELECT record_no, raw, reason FROM rejected_rows ORDER BY 1") == [
        (1, long_line[:100], records.TOO_LONG),
        (2, "{bad", "malformed JSON"),
    ]
    assert table(con, "SELECT artist_id FROM ratings") == [("a1",)]


def test_a_bom_is_skipped_and_the_name_decides_the_format(con, landing_dir):
    seed_catalogue(con, landing_dir)
    bom = landing.UTF8_BOM
    write(landing_dir, "ratings/1.json", bom + json.dumps([GOOD_RATING]).encode())
    write(landing_dir, "ratings/2.jsonl", bom + jsonl({**GOOD_RATING, "artist_id": "a2"}).encode())
    # a first line that is an array does not make JSON Lines an array
    write(landing_dir, "ratings/3.ndjson", jsonl("[1, 2]", {**GOOD_RATING, "user_id": "bob"}))
    reports = ingest_all(con, landing_dir)[-3:]
    assert [(r.rows_read, r.rows_accepted) for r in reports] == [(1, 1), (1, 1), (2, 1)]
    assert table(con, "SELECT source_file, record_no, raw, reason FROM rejected_rows") == [
        ("ratings/3.ndjson", 1, "[1, 2]", "not a JSON object")
    ]


RECORD_AS_WRITTEN = '{"userId": "ann",  "comment": "kept \\u00e9 as is", "artist_id": "a1"}'


@pytest.mark.parametrize(
    "name, content",
    [
        ("r.jsonl", jsonl(GOOD_RATING, RECORD_AS_WRITTEN)),
        ("r.jsonl", jsonl(GOOD_RATING, RECORD_AS_WRITTEN, "{not json")),
        ("r.json", f"[{json.dumps(GOOD_RATING)},\n  {RECORD_AS_WRITTEN} ]"),
        ("r.json", f'[{json.dumps(GOOD_RATING)},\n  {RECORD_AS_WRITTEN}, "not an object"]'),
    ],
    ids=["typed read", "text read", "array, typed read", "array, text read"],
)
def test_a_rejected_record_keeps_the_bytes_it_was_written_with(con, landing_dir, name, content):
    seed_catalogue(con, landing_dir)
    write(landing_dir, f"ratings/{name}", content)
    ingest_all(con, landing_dir)
    assert table(con, "SELECT record_no, raw FROM rejected_rows ORDER BY 1")[0] == (
        2,
        RECORD_AS_WRITTEN,
    )
    assert table(con, "SELECT artist_id, rating FROM ratings") == [("a1", 4.0)]


def test_a_gzip_file_with_a_bad_line_is_read_line_by_line(con, landing_dir):
    seed_catalogue(con, landing_dir)
    write(landing_dir, "ratings/r.jsonl.gz", jsonl(GOOD_RATING).encode() + LATIN1_LINE + b"\n")
    [report] = ingest_all(con, landing_dir)[-1:]
    assert (report.rows_accepted, report.rejected_by_reason) == (1, {records.INVALID_UTF8: 1})


def test_a_file_that_cannot_be_opened_is_tried_again_next_time(con, landing_dir):
    seed_catalogue(con, landing_dir)
    path = write(landing_dir, "ratings/r.jsonl", jsonl(GOOD_RATING))
    [file] = [f for f in landing.scan(landing_dir) if f.kind == "ratings"]
    path.unlink()  # gone between the scan and the read
    report = ingest.ingest_file(con, file)
    assert report.failure == "ratings/r.jsonl: No such file or directory"
    assert ledger(con) == []
    write(landing_dir, "ratings/r.jsonl", jsonl(GOOD_RATING))
    assert ingest_all(con, landing_dir)[-1].rows_accepted == 1


def test_a_pretty_printed_array_keeps_each_element_as_written(con, landing_dir):
    seed_catalogue(con, landing_dir)
    unknown = {"user_id": "zed", "artist_id": "a1", "rating": 2}
    write(landing_dir, "ratings/r.json", json.dumps([GOOD_RATING, unknown, "x\u0000"], indent=2))
    ingest_all(con, landing_dir)
    assert table(con, "SELECT record_no, raw, reason FROM rejected_rows ORDER BY 1") == [
        (2, json.dumps(unknown, indent=2).replace("\n", "\n  "), "unknown user_id"),
        (3, '"x\\u0000"', "not a JSON object"),
    ]


BAD_LINE = '{"user_id": "bob", "artist_id": '
MANY_RECORDS = {
    # blank lines and bad ones on both sides of where blocks end
    "lines.jsonl": jsonl(
        GOOD_RATING,
        "",
        BAD_LINE,
        "  ",
        "[1]",
        {**GOOD_RATING, "artist_id": "a2"},
        "",
        "7",
        BAD_LINE,
    ),
    "array.json": json.dumps([GOOD_RATING, 1, {**GOOD_RATING, "artist_id": "a2"}, [], "x", 2]),
    # found not to be one array only after a few blocks of elements
    "not-an-array.json": json.dumps([GOOD_RATING, 1, 2, 3, 4, 5, 6])[:-1] + ", }",
}


@pytest.mark.parametrize("name", sorted(MANY_RECORDS))
def test_records_read_a_few_at_a_time_are_read_as_all_at_once(tmp_path, monkeypatch, name):
    """The text reader holds at most `records.RECORDS_PER_BLOCK` records at once, read
    `records.BLOCK_BYTES` at a time: smaller blocks change nothing that is stored."""

    def ingested() -> tuple:
        landing_dir = tmp_path / f"landing-{records.RECORDS_PER_BLOCK}"
        with warehouse() as con:
            seed_catalogue(con, landing_dir)
            write(landing_dir, f"ratings/{name}", MANY_RECORDS[name])
            [report] = ingest_all(con, landing_dir)[-1:]
            return (
                (report.rows_read, report.rows_accepted, report.rows_rejected),
                table(con, "SELECT record_no, raw, reason FROM rejected_rows ORDER BY 1"),
                table(con, "SELECT user_id, artist_id FROM ratings ORDER BY ALL"),
            )

    all_at_once = ingested()
    monkeypatch.setattr(records, "RECORDS_PER_BLOCK", 2)
    monkeypatch.setattr(records, "BLOCK_BYTES", 100)
    assert ingested() == all_at_once
    if name == "not-an-array.json":
        assert all_at_once[:2] == ((1, 0, 1), [(1, MANY_RECORDS[name], "malformed JSON")])
    else:
        assert all_at_once[0][1] == 2
