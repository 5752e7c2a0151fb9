import json
import os

import pytest

from musicrec_assets.warehouse import landing
from musicrec_assets.warehouse.landing import write_json_records


def test_scan_orders_kinds_and_skips_files_in_progress(tmp_path):
    for name in (
        "ratings/a.jsonl",
        "users/u.json",
        "artists/x.ndjson.gz",
        "users/sub/v.jsonl",
        "ratings/b.jsonl.part",
        "ratings/c.tmp",
        "ratings/.hidden.jsonl",
        "ratings/notes.txt",
        "elsewhere/z.jsonl",
    ):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    found = [(f.kind, f.relative_path) for f in landing.scan(tmp_path)]
    assert found == [
        ("users", "users/sub/v.jsonl"),
        ("users", "users/u.json"),
        ("artists", "artists/x.ndjson.gz"),
        ("ratings", "ratings/a.jsonl"),
    ]


def test_links_out_of_the_landing_folder_are_ignored(tmp_path):
    outside = tmp_path / "secret.jsonl"
    outside.write_text('{"id": "x"}')
    users = tmp_path / "landing" / "users"
    users.mkdir(parents=True)
    os.symlink(outside, users / "link.jsonl")
    assert landing.scan(tmp_path / "landing") == []
    assert landing.resolve_inside(tmp_path / "landing", "../secret.jsonl") is None


def test_array_sniffing(tmp_path):
    array, lines = tmp_path / "a.json", tmp_path / "b.json"
    array.write_text('\n  [{"id": 1}]')
    lines.write_text('{"id": 1}\n')
    files = {p.name: landing.LandingFile("users", p, p.name, 0, 0) for p in (array, lines)}
    assert files["a.json"].is_json_array() and not files["b.json"].is_json_array()


def test_write_json_records_edge_cases(tmp_path):
    assert write_json_records(tmp_path / "empty.jsonl", []) == 0
    assert (tmp_path / "empty.jsonl").read_bytes() == b""
    assert write_json_records(tmp_path / "empty.json", []) == 0
    assert json.loads((tmp_path / "empty.json").read_text()) == []
    with pytest.raises(ValueError, match="jsonl or .json"):
        write_json_records(tmp_path / "records.csv", [{"id": "a"}])

    def failing():
        yield {"id": "a"}
        raise RuntimeError("generator broke")

    with pytest.raises(RuntimeError):
        write_json_records(tmp_path / "broken.jsonl", failing())
    assert not (tmp_path / "broken.jsonl").exists()
    assert not (tmp_path / "broken.jsonl.part").exists()


def test_a_file_being_written_is_not_scanned_until_complete(tmp_path):
    path = landing.landing_path(tmp_path, "users", "u.jsonl", compressed=True)
    seen_while_writing = []

    def records():
        yield {"id": "a"}
        seen_while_writing.extend(landing.scan(tmp_path))
        assert [p.name for p in path.parent.iterdir()] == ["u.jsonl.gz" + landing.WRITING_SUFFIX]
        yield {"id": "b"}

    assert write_json_records(path, records()) == 2
    assert seen_while_writing == []
    assert [f.relative_path for f in landing.scan(tmp_path)] == ["users/u.jsonl.gz"]
    assert landing.LandingFile("users", path, "", 0, 0).read_text() == '{"id":"a"}\n{"id":"b"}\n'
