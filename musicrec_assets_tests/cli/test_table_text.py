"""The readers print their answers without pandas (issue 25), byte for byte as pandas'
``to_string(index=False)`` printed the frame DuckDB made of the same rows."""

import random

import duckdb
import pytest

from musicrec_assets.cli.table_text import printable, table_text
from musicrec_assets.warehouse.queries import fetch_table

WIDTH = 100


def float_column(seed: int, sql_type: str) -> str:
    """A query of one column of floats, with NULL, NaN or infinity here and there: of every
    size for an odd ``seed`` (exponents, mostly), of sizes pandas shows with a point else."""
    rng = random.Random(seed)
    smallest, largest = (-9, 12) if seed % 2 else (-3, 5)
    values = [
        "NULL"
        if rng.random() < 0.1
        else f"'{rng.choice(['nan', 'inf', '-inf'])}'"
        if rng.random() < 0.05
        else repr(rng.choice([-1, 1]) * round(rng.random(), rng.randint(0, 8)))
        if rng.random() < 0.3
        else repr(rng.choice([-1, 1]) * rng.random() * 10 ** rng.randint(smallest, largest))
        for _ in range(rng.randint(1, 8))
    ]
    rows = ", ".join(f"({value}::{sql_type})" for value in values)
    return f"SELECT * FROM (VALUES {rows}) t(x)"


QUERIES = [
    "SELECT 1 AS a, 2.5::DOUBLE AS b, 'x' AS c",
    "SELECT * FROM (VALUES (1), (NULL), (3)) t(i)",
    "SELECT * FROM (VALUES ('a'), (NULL), ('bb')) t(s)",
    "SELECT NULL::VARCHAR AS s, 'a' AS t",
    "SELECT 'tab\there' AS t, 'new' || chr(10) || 'line' || chr(13) AS n, 'é日本' AS u",
    'SELECT 1 AS "x\ty"',
    "SELECT -5::TINYINT AS a, 0::SMALLINT AS b, 7::UBIGINT AS c, -3::BIGINT AS d",
    "SELECT * FROM (VALUES (1e6::DOUBLE), (2.0)) t(x)",
    "SELECT * FROM (VALUES (1e15::DOUBLE), (2.0)) t(x)",
    "SELECT * FROM (VALUES (0.00001::DOUBLE), (2.0)) t(x)",
    "SELECT * FROM (VALUES (0.0::DOUBLE), (-0.0)) t(x)",
    "SELECT * FROM (VALUES (10.0::DOUBLE), (20.0)) t(x)",
    "SELECT * FROM (VALUES (17.354017::FLOAT), (2.5::FLOAT), (NULL)) t(x)",
    "SELECT NULL::DOUBLE AS x, 'nan'::DOUBLE AS y, 'inf'::DOUBLE AS z",
    "SELECT * FROM (VALUES (TIMESTAMP '2024-01-02'), (NULL)) t(ts)",
    "SELECT * FROM (VALUES (TIMESTAMP '2024-01-02 03:04:05'), (TIMESTAMP '2024-01-02')) t(ts)",
    "SELECT * FROM (VALUES (TIMESTAMP '2024-01-02 03:04:05.12'), (TIMESTAMP '2024-01-02')) t(ts)",
    "SELECT * FROM (VALUES (TIMESTAMP '0999-01-02 03:04:05.000001'), (NULL)) t(ts)",
    "SELECT NULL::TIMESTAMP AS ts",
    "SELECT repeat('x', 150) AS wide, 1 AS n",
    "SELECT repeat('x', 50) AS a, repeat('y', 48) AS b, repeat('z', 47) AS c, 1.5::DOUBLE AS d",
    "SELECT range AS rank, 'artist ' || range AS name, range / 7 AS score FROM range(12)",
    "EXPLAIN SELECT 1",
    *(float_column(seed, "DOUBLE") for seed in range(40)),
    *(float_column(seed, "FLOAT") for seed in range(40, 50)),
]


@pytest.mark.parametrize("line_width", [None, WIDTH])
def test_the_same_text_as_pandas(line_width):
    with duckdb.connect() as con:
        for query in QUERIES:
            result = con.execute(query)
            assert printable(str(type_) for _, type_, *_ in result.description), query
            printed = table_text(fetch_table(result), line_width)
            by_pandas = con.execute(query).df().to_string(index=False, line_width=line_width)
            assert printed == by_pandas, query
