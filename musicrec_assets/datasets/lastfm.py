"""Import the HetRec 2011 Last.fm data set (hetrec2011-lastfm-2k) into a landing folder.

Reads ``artists.dat`` (``id  name  url  pictureURL``) and ``user_artists.dat``
(``userID  artistID  weight``), both tab-separated with a header line, and writes
landing JSON Lines::

    artists/lastfm-hetrec2011.jsonl   {"id": "<artistID>", "name": ...}
    users/lastfm-hetrec2011.jsonl     {"id": "<userID>"}            (the data has no names)
    ratings/lastfm-hetrec2011.jsonl   {"user_id", "artist_id", "plays": weight}

``weight`` is a play count, so the import feeds the implicit-feedback path.

Where the folder also holds ``tags.dat`` (``tagID  tagValue``, Latin-1) and
``user_taggedartists.dat`` (``userID  artistID  tagID  day  month  year``), each artist
record carries its tags, weighted by how many listeners applied each tag to it::

    {"id": "<artistID>", "name": ..., "tags": {"post-rock": 12, "icelandic": 3}}

(an artist nobody tagged has no ``tags``; tag assignments to artists that ``artists.dat``
does not list, about 0.8% of them, are left out, as those artists have no record). The
tags are written as published; the ingest normalises them.

The files are read with quoting disabled: artist names contain double quotes
(``"Weird Al" Yankovic``, ``Royce da 5'9"``) that a CSV reader would otherwise take
as field delimiters, silently merging rows. Names are kept exactly as published,
including the few that are already mojibake in the source (``BallakÃ© Sissoko``).

The data set is for non-commercial use only; it is never bundled, only read from
where the user keeps it.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from musicrec_assets.warehouse.landing import landing_path, write_json_records

ARTISTS_FILE = "artists.dat"
USER_ARTISTS_FILE = "user_artists.dat"
ARTISTS_HEADER = ["id", "name", "url", "pictureURL"]
USER_ARTISTS_HEADER = ["userID", "artistID", "weight"]
TAGS_FILE = "tags.dat"
USER_TAGGED_ARTISTS_FILE = "user_taggedartists.dat"
TAGS_HEADER = ["tagID", "tagValue"]
USER_TAGGED_ARTISTS_HEADER = ["userID", "artistID", "tagID", "day", "month", "year"]
LANDING_NAME = "lastfm-hetrec2011.jsonl"


def import_lastfm(src_dir: str | Path, landing_dir: str | Path) -> dict[str, int]:
    """Convert the HetRec 2011 Last.fm files into landing JSON Lines.

    Parameters
    ----------
    src_dir : str or Path
        Folder holding ``artists.dat`` and ``user_artists.dat``.
    landing_dir : str or Path
        Landing folder; ``{users,artists,ratings}/lastfm-hetrec2011.jsonl`` are
        (re)written in it, each appearing only once complete.

    Returns
    -------
    dict of str to int
        Records written: ``users`` (distinct userIDs with plays), ``artists`` and
        ``ratings``; with the tag files, also ``tagged_artists`` (artist records with tags).

    Raises
    ------
    FileNotFoundError
        If either input file is missing (the tag files are optional, but not one alone).
    ValueError
        On an unexpected header, a row with the wrong number of fields, or a
        non-integer id or weight (the message names file and line).
    """
    src_dir = Path(src_dir)
    tags = _artist_tags(src_dir)
    tagged = 0

    def artists() -> Iterator[dict]:
        nonlocal tagged
        for path, line, (artist_id, name, _url, _picture) in _rows(
            src_dir / ARTISTS_FILE, ARTISTS_HEADER
        ):
            record = {"id": str(_integer(artist_id, path, line)), "name": name}
            if tags and (own := tags.get(record["id"])):
                record["tags"] = own
                tagged += 1
            yield record

    n_artists = write_json_records(landing_path(landing_dir, "artists", LANDING_NAME), artists())

    # user_artists.dat is sorted by user, but a dict keeps first-seen order whatever
    # the order, without a second pass over the file.
    user_ids: dict[str, None] = {}

    def ratings() -> Iterator[dict]:
        for path, line, (user_id, artist_id, weight) in _rows(
            src_dir / USER_ARTISTS_FILE, USER_ARTISTS_HEADER
        ):
            user = str(_integer(user_id, path, line))
            user_ids[user] = None
            yield {
                "user_id": user,
                "artist_id": str(_integer(artist_id, path, line)),
                "plays": _integer(weight, path, line),
            }

    n_ratings = write_json_records(landing_path(landing_dir, "ratings", LANDING_NAME), ratings())
    n_users = write_json_records(
        landing_path(landing_dir, "users", LANDING_NAME), ({"id": user} for user in user_ids)
    )
    counts = {"users": n_users, "artists": n_artists, "ratings": n_ratings}
    return counts | ({"tagged_artists": tagged} if tags is not None else {})


def _artist_tags(src_dir: Path) -> dict[str, dict[str, int]] | None:
    """Each artist's tags with how many listeners applied each (distinct users; a tag text
    that two tagIDs share adds up); None when the folder has no tag files."""
    tags_path, tagged_path = src_dir / TAGS_FILE, src_dir / USER_TAGGED_ARTISTS_FILE
    if not tags_path.exists() and not tagged_path.exists():
        return None
    names = {
        _integer(tag_id, path, line): value
        for path, line, (tag_id, value) in _rows(tags_path, TAGS_HEADER, encoding="latin-1")
    }
    listeners: dict[tuple[str, str], set[int]] = {}
    for path, line, (user_id, artist_id, tag_id, *_date) in _rows(
        tagged_path, USER_TAGGED_ARTISTS_HEADER
    ):
        tag = _integer(tag_id, path, line)
        if tag not in names:
            raise ValueError(f"{path}:{line}: tagID {tag} is not in {TAGS_FILE}")
        key = (str(_integer(artist_id, path, line)), names[tag])
        listeners.setdefault(key, set()).add(_integer(user_id, path, line))
    tags: dict[str, dict[str, int]] = {}
    for (artist, tag), users in listeners.items():
        own = tags.setdefault(artist, {})
        own[tag] = own.get(tag, 0) + len(users)
    return tags


def _rows(
    path: Path, header: list[str], encoding: str = "utf-8"
) -> Iterator[tuple[Path, int, list[str]]]:
    """Yield (path, line number, fields) of a tab-separated file after checking its header."""
    with open(path, encoding=encoding, newline="") as stream:
        reader = csv.reader(stream, delimiter="\t", quoting=csv.QUOTE_NONE)
        found = next(reader, None)
        if found != header:
            raise ValueError(f"{path}: expected header {header}, found {found}")
        for fields in reader:
            if not fields:  # a blank line, e.g. a trailing one added by an editor
                continue
            if len(fields) != len(header):
                raise ValueError(
                    f"{path}:{reader.line_num}: expected {len(header)} tab-separated "
                    f"fields, found {len(fields)}"
                )
            yield path, reader.line_num, fields


def _integer(text: str, path: Path, line: int) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{path}:{line}: expected an integer, found {text!r}") from None
