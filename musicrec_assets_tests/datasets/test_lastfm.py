import json
from pathlib import Path

import pytest

from musicrec_assets.datasets.lastfm import import_lastfm

REAL_DATA = (
    Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "lastfm-hetrec2011-2k"
)

ARTISTS_DAT = (
    "id\tname\turl\tpictureURL\n"
    "1\tMALICE MIZER\thttp://www.last.fm/music/MALICE+MIZER\thttp://x/1.jpg\n"
    '1686\t"Weird Al" Yankovic\thttp://www.last.fm/music/%22Weird+Al%22+Yankovic\t\n'
    "2906\tRoyce da 5'9\"\thttp://www.last.fm/music/Royce+da+5%279%22\thttp://x/2.jpg\n"
    "11681\tBallakÃ© Sissoko\thttp://www.last.fm/music/Ballak%C3%A9+Sissoko\thttp://x/3.jpg\n"
)
USER_ARTISTS_DAT = (
    "userID\tartistID\tweight\n2\t1\t13883\n2\t1686\t1\n7\t2906\t352698\n3\t11681\t42\n"
)


def read_json_lines(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as stream:
        return [json.loads(line) for line in stream]


def write_fixture(folder: Path, artists: str = ARTISTS_DAT, user_artists: str = USER_ARTISTS_DAT):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "artists.dat").write_text(artists, encoding="utf-8")
    (folder / "user_artists.dat").write_text(user_artists, encoding="utf-8")
    return folder


def test_import_converts_every_row_and_keeps_names_verbatim(tmp_path):
    counts = import_lastfm(write_fixture(tmp_path / "src"), tmp_path / "landing")
    assert counts == {"users": 3, "artists": 4, "ratings": 4}
    landing = tmp_path / "landing"
    assert read_json_lines(landing / "artists" / "lastfm-hetrec2011.jsonl") == [
        {"id": "1", "name": "MALICE MIZER"},
        {"id": "1686", "name": '"Weird Al" Yankovic'},
        {"id": "2906", "name": "Royce da 5'9\""},
        {"id": "11681", "name": "BallakÃ© Sissoko"},
    ]
    assert read_json_lines(landing / "users" / "lastfm-hetrec2011.jsonl") == [
        {"id": "2"},
        {"id": "7"},
        {"id": "3"},
    ]
    assert read_json_lines(landing / "ratings" / "lastfm-hetrec2011.jsonl") == [
        {"user_id": "2", "artist_id": "1", "plays": 13883},
        {"user_id": "2", "artist_id": "1686", "plays": 1},
        {"user_id": "7", "artist_id": "2906", "plays": 352698},
        {"user_id": "3", "artist_id": "11681", "plays": 42},
    ]
    # mojibake stays as published, written as UTF-8 rather than escaped
    text = (landing / "artists" / "lastfm-hetrec2011.jsonl").read_text(encoding="utf-8")
    assert "BallakÃ© Sissoko" in text
    assert not list(landing.rglob("*.part"))


def test_trailing_blank_lines_are_ignored(tmp_path):
    src = write_fixture(tmp_path / "src", ARTISTS_DAT + "\n", USER_ARTISTS_DAT + "\n\n")
    assert import_lastfm(src, tmp_path / "landing") == {"users": 3, "artists": 4, "ratings": 4}


@pytest.mark.parametrize(
    ("artists", "user_artists", "message"),
    [
        ("id\tname\n1\tX\n", USER_ARTISTS_DAT, "expected header"),
        (ARTISTS_DAT + "5\tno url\n", USER_ARTISTS_DAT, r"artists\.dat:6: expected 4"),
        (ARTISTS_DAT, USER_ARTISTS_DAT + "2\tx\t3\n", r"user_artists\.dat:6: expected an integer"),
    ],
)
def test_malformed_input_is_reported_with_its_line(tmp_path, artists, user_artists, message):
    src = write_fixture(tmp_path / "src", artists, user_artists)
    with pytest.raises(ValueError, match=message):
        import_lastfm(src, tmp_path / "landing")


TAGS_DAT = "tagID\ttagValue\n1\tmetal\n2\tPost-Rock\n3\tcaf\u00e9 music\n4\tunused\n"
USER_TAGGED_ARTISTS_DAT = (
    "userID\tartistID\ttagID\tday\tmonth\tyear\n"
    "2\t1\t1\t1\t4\t2009\n"
    "3\t1\t1\t1\t5\t2009\n"
    "3\t1\t2\t1\t5\t2009\n"
    "2\t2906\t3\t1\t4\t2009\n"
    "2\t999\t1\t1\t4\t2009\n"  # an artist artists.dat does not list
)


def test_tags_go_into_the_artist_records_weighted_by_listeners(tmp_path):
    src = write_fixture(tmp_path / "src")
    (src / "tags.dat").write_bytes(TAGS_DAT.encode("latin-1"))  # as published: Latin-1
    (src / "user_taggedartists.dat").write_text(USER_TAGGED_ARTISTS_DAT)
    counts = import_lastfm(src, tmp_path / "landing")
    assert counts == {"users": 3, "artists": 4, "ratings": 4, "tagged_artists": 2}
    artists = read_json_lines(tmp_path / "landing" / "artists" / "lastfm-hetrec2011.jsonl")
    assert [row.get("tags") for row in artists] == [
        {"metal": 2, "Post-Rock": 1},
        None,
        {"caf\u00e9 music": 1},
        None,
    ]


def test_one_tag_file_alone_is_an_error(tmp_path):
    src = write_fixture(tmp_path / "src")
    (src / "tags.dat").write_bytes(TAGS_DAT.encode("latin-1"))
    with pytest.raises(FileNotFoundError):
        import_lastfm(src, tmp_path / "landing")


def test_missing_input_files_raise(tmp_path):
    with pytest.raises(FileNotFoundError):
        import_lastfm(tmp_path, tmp_path / "landing")


@pytest.mark.skipif(
    not (REAL_DATA / "user_artists.dat").is_file(),
    reason=f"HetRec 2011 Last.fm data not found at {REAL_DATA} (licence-restricted, not bundled)",
)
def test_real_hetrec_data_arrives_complete(tmp_path):
    counts = import_lastfm(REAL_DATA, tmp_path)
    tagged = counts.pop("tagged_artists")
    assert counts == {"users": 1_892, "artists": 17_632, "ratings": 92_834}

    # an independent, naive reading of the source: every line split on tabs
    source_lines = (REAL_DATA / "artists.dat").read_text(encoding="utf-8").splitlines()[1:]
    expected_artists = {
        fields[0]: fields[1] for fields in (line.split("\t") for line in source_lines)
    }
    artists = read_json_lines(tmp_path / "artists" / "lastfm-hetrec2011.jsonl")
    assert {row["id"]: row["name"] for row in artists} == expected_artists
    assert sum("tags" in row for row in artists) == tagged
    # an independent count of the tag assignments: one listener, one tag, one artist each
    tag_names = dict(
        line.split("\t")
        for line in (REAL_DATA / "tags.dat").read_text(encoding="latin-1").splitlines()[1:]
    )
    assigned = [
        line.split("\t")[:3]
        for line in (REAL_DATA / "user_taggedartists.dat").read_text().splitlines()[1:]
    ]
    in_catalogue = [row for row in assigned if row[1] in expected_artists]
    assert sum(sum(row.get("tags", {}).values()) for row in artists) == len(in_catalogue)
    assert tagged == len({row[1] for row in in_catalogue})
    by_id = {row["id"]: row for row in artists}
    user, artist, tag = in_catalogue[0]
    assert by_id[artist]["tags"][tag_names[tag]] >= 1
    assert len(artists) == 17_632
    assert expected_artists["1686"] == '"Weird Al" Yankovic'

    source_lines = (REAL_DATA / "user_artists.dat").read_text(encoding="ascii").splitlines()[1:]
    expected_rows = [tuple(line.split("\t")) for line in source_lines]
    rows = read_json_lines(tmp_path / "ratings" / "lastfm-hetrec2011.jsonl")
    assert [(r["user_id"], r["artist_id"], str(r["plays"])) for r in rows] == expected_rows
    assert len(rows) == 92_834
    assert {r["artist_id"] for r in rows} <= set(expected_artists)

    users = read_json_lines(tmp_path / "users" / "lastfm-hetrec2011.jsonl")
    assert len(users) == 1_892
    assert {user["id"] for user in users} == {row[0] for row in expected_rows}
