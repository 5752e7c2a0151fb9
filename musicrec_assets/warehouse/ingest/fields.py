"""What a record of each kind holds, as SQL: its fields typed, the first reason it fails, and
which of two ratings for one pair is kept.

Both paths (see the package docstring) check records with :func:`checked`, so a record is
accepted or rejected for the same reason whichever path it takes.
"""

from __future__ import annotations

from musicrec_assets.warehouse import feedback_kind
from musicrec_assets.warehouse.feedback_kind import HOME_KIND

FIELDS = {
    "users": ("id", "first_name", "last_name"),
    "artists": ("id", "name"),
    "ratings": ("user_id", "artist_id", "rating", "plays", "timestamp"),
}
KEYS = {"users": ("id",), "artists": ("id",), "ratings": ("user_id", "artist_id")}
# fields a record may carry beyond its table's columns (FIELDS): an artist's tags go to their
# own table, ``artist_tags`` (:func:`tag_rows`)
SIDE_FIELDS = {"artists": ("tags",)}


def record_fields(kind: str) -> tuple[str, ...]:
    """Every field a record of ``kind`` is read and checked for: its table's, then the side
    fields."""
    return FIELDS[kind] + SIDE_FIELDS.get(kind, ())


UNKNOWN_USER = "unknown user_id"
UNKNOWN_ARTIST = "unknown artist_id"
DUPLICATE = "duplicate key within file"
MALFORMED = "malformed JSON"
NOT_AN_OBJECT = "not a JSON object"
REPEATED_FIELD = "a field given twice in the record"
NOT_FINITE_TIMESTAMP = "timestamp not finite"
NOT_HALF_STARS = "rating not a multiple of 0.5"
# the home's kind of feedback (:mod:`musicrec_assets.warehouse.feedback_kind`): a record
# without that kind's value is rejected, whatever else it carries
NO_RATING = "no rating: this home holds ratings (feedback explicit)"
NO_PLAYS = "no plays: this home holds play counts (feedback implicit)"
WRONG_TAGS = "wrong type: tags must be a list of strings or an object of tag: number"
NEGATIVE_TAG_WEIGHT = "negative or infinite tag weight"


def control_character(name: str) -> str:
    return f"control character in {name}"


def _json_columns(kind: str, ids_as_text: bool) -> str:
    def column_type(name: str) -> str:
        return "VARCHAR" if ids_as_text and name in KEYS[kind] else "JSON"

    return "{" + ", ".join(f"'{name}': '{column_type(name)}'" for name in record_fields(kind)) + "}"


def read_json_records(
    kind: str, json_format: str, compression: str, ids_as_text: bool = False
) -> str:
    """The records of a landing file (its path the query's ``$path`` parameter, its
    ``compression`` as `LandingFile.compression` gives it) as :func:`checked` takes them, read
    by ``read_json`` with every field as JSON.

    ``ids_as_text``: the key fields (ids) typed VARCHAR instead; see :func:`clean_pass.insert`.
    """
    fields = ", ".join(f'"{n}"' for n in record_fields(kind))
    columns = _json_columns(kind, ids_as_text)
    return f"""(SELECT NULL::VARCHAR AS problem, {fields}
               FROM read_json($path, format = '{json_format}', columns = {columns},
                              compression = '{compression}'))"""


# valid JSON whose first character (after white space) is a brace is an object
_STARTS_AN_OBJECT = r"^[ \t\n\r]*\{"


def parsed_text(kind: str, source: str, carried: str) -> str:
    """The records of ``source`` (their text ``raw``, and the ``problem`` that the text
    reader found, if any) as :func:`checked` takes them: the ``carried`` columns, the problem
    (else that the text is not JSON, or not an object, or gives one of the kind's fields
    twice) and the fields as JSON."""
    # one parse for all the fields: a json_extract per field would parse the text each time
    paths = ", ".join(f"""'$."{name}"'""" for name in record_fields(kind))
    fields = ", ".join(f'fields[{i}] AS "{name}"' for i, name in enumerate(record_fields(kind), 1))
    # json_extract takes the first of a repeated field and a JSON reader elsewhere the last:
    # such a record means two things, so it is rejected (read_json refuses it too, which sends
    # its file here). Other keys are never read, so they may repeat.
    names = ", ".join(f"'{name}'" for name in record_fields(kind))
    own_keys = f"list_filter(json_keys(raw), lambda key: list_contains([{names}], key))"
    return f"""
        SELECT {carried},
               CASE WHEN problem IS NOT NULL THEN problem
                    WHEN NOT is_json THEN '{MALFORMED}'
                    WHEN NOT regexp_matches(raw, '{_STARTS_AN_OBJECT}') THEN '{NOT_AN_OBJECT}'
                    WHEN len({own_keys}) > len(list_distinct({own_keys}))
                        THEN '{REPEATED_FIELD}'
               END AS problem,
               {fields}
        FROM (SELECT *, CASE WHEN is_json THEN json_extract(raw, [{paths}]) END AS fields
              FROM (SELECT *, problem IS NULL AND json_valid(raw) AS is_json FROM {source}))
        """


# Typed values are read off each field's JSON text (cheap string tests) rather than by
# re-parsing it: a JSON string starts with a quote, a number casts to DOUBLE, absent is NULL.
def _text(column: str) -> str:
    return f"nullif({column}::VARCHAR, 'null')"


def _string(column: str) -> str:
    return f"""CASE WHEN starts_with({column}::VARCHAR, '"') THEN {column} ->> '$' END"""


def _number(column: str) -> str:
    # a JSON string's text keeps its quotes, which no number cast accepts
    return f"TRY_CAST({column}::VARCHAR AS DOUBLE)"


def decide_feedback_kind(con, source: str, decided_by: str) -> str | None:
    """Decide the home's kind of feedback by the ratings of ``source`` (records as
    :func:`checked` takes them), if it has none yet."""
    return feedback_kind.decide_by_majority(
        con, source, _number('"rating"'), _number('"plays"'), decided_by
    )


def _identifier(column: str) -> str:
    """Ids are JSON strings, or integers taken as their decimal text."""
    text = f"{column}::VARCHAR"
    return f"""CASE WHEN starts_with({text}, '"') THEN {column} ->> '$'
                    WHEN regexp_full_match({text}, '-?[0-9]+') THEN {text} END"""


# Unicode's white space: RE2's \s is ASCII only; \pZ adds the no-break, em, ideographic …
# spaces and the line and paragraph separators, U+0085 is the one left (a control)
_BLANK = r"[\s\v\x{85}\pZ]*"


# C0, DEL and C1: a NUL cuts an id short in numpy's strings (two ids become one), and none of
# them can be typed or shown; format characters (RTL marks, joiners) stay allowed
CONTROL_CHARACTER = r"\p{Cc}"


def _id_checks(name: str, clean_pass: bool = False) -> list[str]:
    # a regular expression, not trim(): trim copies every id. Only ids that start with a
    # control character, a space or a non-ASCII character pay for it.
    value = f"{name}_value"
    blank = (
        f"(ascii({value}) <= 32 OR ascii({value}) > 127) AND regexp_full_match({value}, '{_BLANK}')"
    )
    checks = [
        f"WHEN {name}_text IS NULL OR ({blank}) THEN 'missing or empty {name}'",
        f"WHEN {name}_value IS NULL THEN 'wrong type: {name} must be a string'",
    ]
    if not clean_pass:  # which checks each distinct id once, after its insert
        checks.append(
            f"WHEN regexp_matches({value}, '{CONTROL_CHARACTER}') THEN '{control_character(name)}'"
        )
    return checks


def checked(kind: str, source: str, record_no: str = "", clean_pass: bool = False) -> str:
    """A query of ``source``'s records (``problem``, the fields as JSON): each
    field's typed value (``<field>_value``) and the first reason the record fails, if any.

    ``record_no``: a select-list item that numbers the records, when ``source`` has none.
    ``clean_pass``: the form :func:`clean_pass.insert` uses: ``source`` has its ids as VARCHAR
    (see :func:`read_json_records`), taken as they are, and only checked for presence here.
    """

    def text(name: str) -> str:
        # read_json gives JSON null as SQL NULL; only the text read's json_extract gives 'null'
        return f"p.{name}" if clean_pass else _text(f"p.{name}")

    def identifier(name: str) -> str:
        return f"p.{name}" if clean_pass else _identifier(f"p.{name}")

    texts = ", ".join(f'{text(n)} AS "{n}_text"' for n in record_fields(kind))
    if kind == "ratings":
        values = f"""
            {identifier("user_id")} AS user_id_value,
            {identifier("artist_id")} AS artist_id_value,
            {_number("p.rating")} AS rating_value,
            {_number("p.plays")} AS plays_number,
            -- from the text, so that a count beyond 2^53 is not rounded through DOUBLE
            coalesce(TRY_CAST(p.plays::VARCHAR AS BIGINT), TRY_CAST(plays_number AS BIGINT))
                AS plays_value,
            {_number("p.timestamp")} AS timestamp_number,
            CASE WHEN timestamp_number IS NOT NULL
                     THEN make_timestamp(TRY_CAST(timestamp_number * 1e6 AS BIGINT))
                 ELSE TRY_CAST({_string("p.timestamp")} AS TIMESTAMPTZ)::TIMESTAMP
            END AS timestamp_value"""
        checks = [
            *_id_checks("user_id", clean_pass),
            *_id_checks("artist_id", clean_pass),
            "WHEN rating_text IS NOT NULL AND rating_value IS NULL "
            "THEN 'wrong type: rating must be a number'",
            "WHEN rating_value NOT BETWEEN 0.5 AND 5.0 THEN 'rating outside 0.5-5.0'",
            # doubling is exact in binary floating point, so only half stars come out whole
            f"WHEN rating_value * 2 <> round(rating_value * 2) THEN '{NOT_HALF_STARS}'",
            "WHEN plays_text IS NOT NULL AND (plays_number IS NULL "
            "OR plays_number <> floor(plays_number)) THEN 'wrong type: plays must be an integer'",
            "WHEN plays_number < 0 THEN 'negative plays'",
            "WHEN plays_text IS NOT NULL AND plays_value IS NULL THEN 'plays too large'",
            "WHEN rating_value IS NULL AND plays_value IS NULL THEN 'missing rating and plays'",
            f"WHEN rating_value IS NULL AND {HOME_KIND} = 'explicit' THEN '{NO_RATING}'",
            f"WHEN plays_value IS NULL AND {HOME_KIND} = 'implicit' THEN '{NO_PLAYS}'",
            # before the type: a NaN or infinite number is no time either
            "WHEN NOT isfinite(coalesce(timestamp_number, 0)) OR NOT isfinite(timestamp_value) "
            f"THEN '{NOT_FINITE_TIMESTAMP}'",
            "WHEN timestamp_text IS NOT NULL AND timestamp_value IS NULL "
            "THEN 'wrong type: timestamp must be epoch seconds or ISO 8601'",
        ]
        if not clean_pass:
            checks += [
                # IN builds its hash table on the known ids, whatever the optimizer guesses
                # of the file's size
                f"WHEN user_id_value NOT IN (SELECT id FROM users) THEN '{UNKNOWN_USER}'",
                f"WHEN artist_id_value NOT IN (SELECT id FROM artists) THEN '{UNKNOWN_ARTIST}'",
            ]
    else:
        names = [n for n in FIELDS[kind] if n != "id"]
        values = ", ".join(
            [f"{identifier('id')} AS id_value"]
            + [f"{_string(f'p.{n}')} AS {n}_value" for n in names]
        )
        checks = _id_checks("id", clean_pass) + [
            f"WHEN {n}_text IS NOT NULL AND {n}_value IS NULL "
            f"THEN 'wrong type: {n} must be a string'"
            for n in names
        ]
        if "tags" in SIDE_FIELDS.get(kind, ()):
            values += f", {_tags('p.tags')} AS tags_value"
            checks += [
                f"WHEN tags_text IS NOT NULL AND tags_value IS NULL THEN '{WRONG_TAGS}'",
                f"WHEN NOT list_bool_and(list_transform(tags_value, lambda t: t.weight >= 0 "
                f"AND isfinite(t.weight))) THEN '{NEGATIVE_TAG_WEIGHT}'",
            ]

    # only typed values go on
    dropped = ", ".join(
        ["problem"]
        + [f'"{n}"' for n in record_fields(kind)]
        + [f'"{n}_text"' for n in record_fields(kind)]
    )
    return f"""
        WITH typed AS (SELECT {record_no} p.*, {texts}, {values} FROM {source} p)
        SELECT * EXCLUDE ({dropped}),
               CASE WHEN problem IS NOT NULL THEN problem {" ".join(checks)} END AS reason
        FROM typed
        """


def _tags(column: str) -> str:
    """An artist's tags as a list of ``{tag, weight}``, each tag as written (normalised by
    :func:`tag_rows`): a list of strings gives each weight 1, an object of numbers its
    values. NULL for any other JSON (a wrong type); an empty list or object is no tags."""
    kind = f"json_type({column})"
    strings = f"list_bool_and(list_transform(json_type({column}, '$[*]'), lambda t: t = 'VARCHAR'))"
    numbers = (
        f"list_bool_and(list_transform(json_type({column}, '$.*'), "
        "lambda t: t IN ('UBIGINT', 'BIGINT', 'DOUBLE')))"
    )
    return f"""CASE
        WHEN {kind} = 'ARRAY' AND coalesce({strings}, true)
            THEN list_transform({column} ->> '$[*]',
                                lambda t: {{'tag': t, 'weight': 1.0::DOUBLE, 'listed': true}})
        WHEN {kind} = 'OBJECT' AND coalesce({numbers}, true)
            THEN list_transform(
                list_zip(json_keys({column}), ({column} ->> '$.*')::DOUBLE[]),
                lambda t: {{'tag': t[1], 'weight': t[2], 'listed': false}})
        END"""


# a tag is compared in lower case with its white space trimmed and runs of it made one space
# (Unicode's white space, as for ids)
_TAG_SPACE = r"[\s\v\x{85}\pZ]+"


def normal_tag(column: str) -> str:
    """SQL: the tag ``column`` normalised: lower case, white space trimmed and collapsed."""
    return f"""trim(regexp_replace(lower({column}), '{_TAG_SPACE}', ' ', 'g'))"""


def tag_rows(source: str, where: str = "true") -> str:
    """A query of ``artist_tags`` rows ``(artist_id, tag, weight)`` from the checked records of
    ``source`` (``id_value``, ``tags_value``) that ``where`` keeps: tags normalised
    (:func:`normal_tag`), a tag written twice in one record counted once from a list and its
    weights added from an object, empty tags and zero weights dropped."""
    return f"""
        SELECT artist_id, tag,
               CASE WHEN bool_or(listed) THEN 1.0 ELSE sum(weight) END AS weight
        FROM (SELECT id_value AS artist_id, entry.listed AS listed,
                     {normal_tag("entry.tag")} AS tag, entry.weight AS weight
              FROM (SELECT id_value, unnest(tags_value) AS entry
                    FROM {source} WHERE {where}))
        WHERE tag <> ''
        GROUP BY artist_id, tag HAVING sum(weight) > 0
        """


def replaces_stored(new_timestamp: str, stored_timestamp: str) -> str:
    """SQL that is true when a new rating replaces the stored rating of the same pair: the
    newer timestamp wins, and a tie, or no timestamps, goes to the new (later) file."""
    return f"""coalesce({new_timestamp}, '-infinity'::TIMESTAMP)
                  >= coalesce({stored_timestamp}, '-infinity'::TIMESTAMP)"""
