"""The home's kind of feedback: ratings (``explicit``) or play counts (``implicit``), decided
once and kept in ``feedback_kind``.

What decides it, whichever comes first: the ``feedback`` setting when it names a kind; the
first ratings file ingested (ratings when at least as many of its records carry a ``rating``
as carry ``plays``); or, in a home from before the kind was kept, the stored ratings by the
same rule, at its next training. From then on a rating record without the home's kind of
value is rejected with its reason (:mod:`musicrec_assets.warehouse.ingest.fields`), so one
stray rating cannot turn a home of play counts into one of ratings, and a played artist
never passes for a rated one.
"""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb

KINDS = ("explicit", "implicit")
VALUE_COLUMN = {"explicit": "rating", "implicit": "plays"}  # the ratings column of each kind

SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback_kind (
    kind       VARCHAR NOT NULL,  -- explicit (ratings) or implicit (play counts)
    decided_by VARCHAR NOT NULL,  -- the setting, a ratings file, or the stored ratings
    decided_at TIMESTAMP NOT NULL
);
"""

# the kind as the record checks read it: NULL while undecided, which lets every kind in
HOME_KIND = "(SELECT kind FROM feedback_kind)"


class SettingConflict(ValueError):
    """The ``feedback`` setting names the other kind than the one the home holds; the message
    says which, what decided it, and what to do (``musicrec run`` prints it as its last line)."""


def decided(con: duckdb.DuckDBPyConnection) -> str | None:
    found = con.execute("SELECT kind FROM feedback_kind").fetchall()
    return found[0][0] if found else None


def _decided_by(con: duckdb.DuckDBPyConnection) -> str:
    return con.execute("SELECT decided_by FROM feedback_kind").fetchall()[0][0]


def decide(con: duckdb.DuckDBPyConnection, kind: str, decided_by: str) -> str:
    """Keep ``kind`` as the home's, unless one is kept already; returns the home's kind."""
    if kind not in KINDS:
        raise ValueError(f"feedback must be explicit or implicit, not {kind!r}")
    con.execute(
        """INSERT INTO feedback_kind
           SELECT ?, ?, ? WHERE NOT EXISTS (FROM feedback_kind)""",
        [kind, decided_by, datetime.now(UTC).replace(tzinfo=None)],
    )
    return decided(con)


def decide_by_majority(
    con: duckdb.DuckDBPyConnection,
    records: str,
    rating: str,
    plays: str,
    decided_by: str,
    params: dict | None = None,
) -> str | None:
    """Decide by what most of ``records`` carry (a table or subquery, ours, never data, with
    its ``params``): ratings when at least as many have a ``rating`` (the SQL expression, NULL
    when absent) as have ``plays``. Returns the home's kind; None, deciding nothing, when none
    carries either."""
    with_rating, with_plays = con.execute(
        f"SELECT count({rating}), count({plays}) FROM {records}", params or {}
    ).fetchall()[0]
    if not with_rating and not with_plays:
        return decided(con)
    return decide(con, "explicit" if with_rating >= with_plays else "implicit", decided_by)


def settle(con: duckdb.DuckDBPyConnection, requested: str) -> str | None:
    """The home's kind once the ``feedback`` setting (``auto``, ``explicit`` or ``implicit``)
    has had its say: a kind it names is kept if the home has none yet, and one that differs
    from the home's is an error that says so."""
    con.execute(SCHEMA)
    requested = str(requested)
    if requested not in (*KINDS, "auto"):
        raise ValueError(f"feedback must be auto, explicit or implicit, not {requested!r}")
    home = decided(con)
    if requested == "auto" or requested == home:
        return home
    if home is None:
        return decide(con, requested, "the feedback setting")
    raise SettingConflict(
        f"feedback: {requested} in the settings, but this home holds "
        f"{'ratings' if home == 'explicit' else 'play counts'} ({home}, decided by "
        f"{_decided_by(con)}); a home's kind of feedback never changes: leave feedback at auto, or "
        "start a new MUSICREC_HOME for the other kind"
    )
