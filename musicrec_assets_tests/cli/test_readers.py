"""The reading commands (`recommend`, `similar`, `top-users`, `sql`) on bad arguments, on an
empty home and on a read-only one: a clear line on stderr and a non-zero exit, never a stack
trace, and nothing written into the home."""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import duckdb
import pytest
from harness import MUSICREC

from musicrec_assets.cli.main import main


def musicrec(*args, home, as_user: list[str] | None = None):
    command = [*(as_user or []), MUSICREC, *args, "--home", str(home)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def assert_one_line_error(result, *words):
    assert result.returncode != 0, result.stdout
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("musicrec")
    for word in words:
        assert word in result.stderr


def known(home: Path) -> tuple[str, str]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(
            "SELECT user_id, artist_id FROM user_recommendations ORDER BY user_id LIMIT 1"
        ).fetchall()[0]


@pytest.mark.parametrize("count", ["-5", "0", "ten"])
@pytest.mark.parametrize("command", ["recommend", "similar", "top-users"])
def test_a_count_below_one_is_refused(capsys, command, count):
    """Refused as the arguments are read, before any home is looked at."""
    with pytest.raises(SystemExit) as exit:
        main([command, "someone", "-n", count])
    assert exit.value.code == 2
    error = capsys.readouterr().err
    assert len(error.strip().splitlines()) == 1 and "-n" in error and "at least 1" in error


@pytest.mark.parametrize(
    "bad",
    [[99], [-3], [99, -3, 4.0]],
    ids=["99", "-3", "99 and -3"],
)
def test_ratings_outside_the_scale_are_refused_naming_them(pipeline_home, tmp_path, bad):
    home, _ = pipeline_home
    _, artist = known(home)
    ratings = tmp_path / "me.json"
    ratings.write_text(json.dumps([{"artist_id": artist, "rating": value} for value in bad]))
    result = musicrec("recommend", "--ratings", str(ratings), home=home)
    assert_one_line_error(result, "0.5-5.0", artist)
    for position, value in enumerate(bad, start=1):
        assert (f"#{position} " in result.stderr) == (not 0.5 <= value <= 5.0)
    assert "new listener" not in result.stdout


READERS = [
    ("recommend", "someone"),
    ("recommend", "someone", "--explain"),
    ("recommend", "--ratings", "{ratings}"),
    ("similar", "someone"),
    ("top-users", "someone"),
    ("top-users", "--ratings", "{ratings}"),
    ("sql", "SELECT 1"),
    ("sql", ""),
]


@pytest.mark.parametrize("args", READERS, ids=" ".join)
def test_on_an_empty_home_a_reader_says_what_to_do_and_writes_nothing(tmp_path, args):
    ratings = tmp_path / "me.json"
    ratings.write_text(json.dumps([{"artist_id": "a", "rating": 4}]))
    home = tmp_path / "home"
    home.mkdir()
    result = musicrec(*(a.format(ratings=ratings) for a in args), home=home)
    assert_one_line_error(result, "make demo")
    assert not list(home.iterdir())


@pytest.fixture(scope="module")
def read_only_home(pipeline_home):
    """A copy of the built home that the commands cannot write (run as `nobody` when the
    tests run as root, whom file modes do not stop), without the champion's downloaded files,
    which a reader would have to write."""
    if os.geteuid() == 0 and not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: cannot make a home read-only")
    as_user = (
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
    )
    holder = Path(tempfile.mkdtemp())
    holder.chmod(0o755)
    home = holder / "home"
    shutil.copytree(pipeline_home[0], home, ignore=shutil.ignore_patterns("models"))
    for path in [home, *home.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    yield home, as_user
    for path in [home, *home.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    shutil.rmtree(holder)


@pytest.mark.parametrize("args", READERS, ids=" ".join)
def test_on_a_read_only_home_a_reader_answers_or_says_why_in_one_line(
    read_only_home, pipeline_home, tmp_path, args
):
    home, as_user = read_only_home
    user, artist = known(pipeline_home[0])
    ratings = tmp_path / "me.json"
    ratings.write_text(json.dumps([{"artist_id": artist, "rating": 4}]))
    ratings.chmod(0o644)
    tmp_path.chmod(0o755)
    args = [a.format(ratings=ratings).replace("someone", user) for a in args]
    if args[0] in ("similar", "top-users") and args[1] == user:
        args[1] = artist
    before = sorted(str(p) for p in home.rglob("*"))
    result = musicrec(*args, home=home, as_user=as_user)
    if args == ["sql", ""] or "--ratings" in args or "--explain" in args:
        # nothing to run, or the champion's files to download into the home first
        assert_one_line_error(result)
    else:
        assert result.returncode == 0, result.stderr
    assert sorted(str(p) for p in home.rglob("*")) == before
