"""`musicrec sql` cannot write anything, anywhere: every statement below is refused with one
line, and afterwards the home (warehouse, landing folder, everything) is byte for byte as it
was. Queries over the tables and the `*_named` views, the README's among them, still run."""

import hashlib
import re
import subprocess
from pathlib import Path

import duckdb
import pytest
from harness import MUSICREC

from musicrec_assets.warehouse import queries
from musicrec_assets.warehouse.queries import fetch_table
from musicrec_assets.warehouse.tables import connect

README = Path(__file__).resolve().parents[2] / "README.md"


def refused_statements(home: Path, outside: Path) -> list[str]:
    landing_file = next((home / "landing" / "ratings").iterdir())
    return [
        f"COPY users TO '{home}/landing/users/x.jsonl'",
        f"COPY (SELECT * FROM ratings) TO '{outside}/ratings.parquet' (FORMAT parquet)",
        f"EXPLAIN ANALYZE COPY users TO '{outside}/users.csv'",
        f"ATTACH '{home}/warehouse.duckdb' AS rw (READ_WRITE)",
        f"ATTACH '{home}/warehouse.duckdb' AS rw (READ_WRITE); DELETE FROM rw.ratings",
        f"ATTACH '{home}/pipeline/warehouse.duckdb' AS working",
        f"ATTACH '{outside}/new.duckdb' AS new",
        f"ATTACH '{outside}/other.duckdb' AS other; USE other; DETACH warehouse; "
        f"ATTACH '{home}/warehouse.duckdb' AS rw (READ_WRITE); DELETE FROM rw.ratings",
        "ATTACH ':memory:' AS scratch",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "SET memory_limit = '1GB'",
        "RESET threads",
        "PRAGMA threads = 1",
        "SET VARIABLE x = 1",
        "CREATE SECRET s (TYPE s3, KEY_ID 'k', SECRET 'v')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/passwd')",
        f"SELECT count(*) FROM read_json('{landing_file}')",
        f"SELECT * FROM '{landing_file}'",
        "SELECT * FROM glob('/etc/*')",
        f"EXPORT DATABASE '{outside}/export'",
        "CHECKPOINT",
        "FORCE CHECKPOINT",
        "VACUUM",
        "DELETE FROM ratings",
        "UPDATE users SET first_name = 'x'",
        "INSERT INTO users SELECT * FROM users",
        "DROP TABLE users",
        "CREATE TABLE t AS SELECT 1",
        "CREATE TEMP TABLE t AS SELECT 1",
        "CREATE VIEW v AS SELECT 1",
        "SELECT 1; DELETE FROM users",
        "BEGIN TRANSACTION",
        "",
        "  -- only a comment",
        "SELEC 1",
    ]


def digest(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_every_writing_statement_is_refused_in_one_line(pipeline_home, tmp_path):
    home, _ = pipeline_home
    before = digest(home)
    with connect(home / "warehouse.duckdb", read_only=True) as con:
        for statement in refused_statements(home, tmp_path):
            with pytest.raises(ValueError) as refused:
                queries.run_query(con, statement, fetch_table)
            message = str(refused.value)
            assert message and len(message.splitlines()) == 1, (statement, message)
        assert queries.run_query(con, "SELECT count(*) AS n FROM users", fetch_table)["n"][0] > 0
    assert digest(home) == before
    assert not list(tmp_path.iterdir())


def test_the_connection_itself_refuses_them_too(pipeline_home, tmp_path):
    """The statement check aside, DuckDB's own guards hold: nothing outside the warehouse is
    reachable, no setting can change, the file is read-only."""
    home, _ = pipeline_home
    before = digest(home)
    statements = [
        s
        for s in refused_statements(home, tmp_path)
        if s.strip()
        and not s.strip().startswith("--")
        and not s.startswith(("CREATE TEMP", "SET VARIABLE", "BEGIN", "SELEC "))
        and s not in ("CHECKPOINT", "FORCE CHECKPOINT", "VACUUM")  # no-ops on a read-only file
    ]
    with connect(home / "warehouse.duckdb", read_only=True) as con:
        for statement in statements:
            with pytest.raises(duckdb.Error):
                con.execute(statement).fetchall()
    assert digest(home) == before
    assert not list(tmp_path.iterdir())


def readme_sql() -> list[str]:
    block = re.search(r"## Tables.*?```sql\n(.*?)```", README.read_text(), re.S).group(1)
    return [s.query for s in duckdb.extract_statements(block)]


def test_the_readme_queries_and_the_named_views_still_run(pipeline_home):
    home, _ = pipeline_home
    assert len(readme_sql()) >= 5
    with connect(home / "warehouse.duckdb", read_only=True) as con:
        for statement in readme_sql():
            queries.run_query(con, statement, fetch_table)
        for view in ("user_recommendations_named", "artist_top_users_named"):
            assert len(queries.run_query(con, f"SELECT * FROM {view} LIMIT 3", fetch_table)) == 3
        assert len(queries.run_query(con, "DESCRIBE users", fetch_table)) and len(
            queries.run_query(con, "SHOW TABLES", fetch_table)
        )


@pytest.mark.parametrize(
    "statement",
    [
        "COPY users TO '{home}/landing/users/x.jsonl'",
        # how ratings were once emptied: the warehouse cannot be attached twice, so swap
        "ATTACH '{other}' AS other; USE other; DETACH warehouse; "
        "ATTACH '{home}/warehouse.duckdb' AS rw (READ_WRITE); DELETE FROM rw.ratings",
        "",
    ],
    ids=["copy-into-landing", "attach-read-write-and-delete", "empty"],
)
def test_the_command_refuses_in_one_line(pipeline_home, tmp_path, statement):
    home, _ = pipeline_home
    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).close()
    before = digest(home)
    result = subprocess.run(
        [MUSICREC, "sql", statement.format(home=home, other=other), "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout
    assert result.stderr.startswith("musicrec: ") and len(result.stderr.splitlines()) == 1
    assert digest(home) == before
    counted = subprocess.run(
        [MUSICREC, "sql", "SELECT count(*) AS n FROM ratings", "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert counted.returncode == 0 and re.search(r"\b[1-9]\d*\b", counted.stdout)
