"""The ``musicrec`` command line."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from musicrec_assets.home import REPO_ROOT, Home
from musicrec_assets.warehouse.tables import WarehouseBusy


def _home(home: str | None) -> Home:
    return Home(Path(home)) if home else Home.from_env()


def _use_home(home: str | None) -> Home:
    """Point this process (and the Dagster instance) at one MUSICREC_HOME.

    The Dagster instance lives in ``<home>/dagster`` unless DAGSTER_HOME is set and no
    ``--home`` was given.
    """
    layout = _home(home)
    os.environ["MUSICREC_HOME"] = str(layout.root)
    layout.create_landing()
    if home or not os.environ.get("DAGSTER_HOME"):
        os.environ["DAGSTER_HOME"] = str(layout.dagster)
    dagster_home = Path(os.environ["DAGSTER_HOME"])
    dagster_home.mkdir(parents=True, exist_ok=True)
    if not (dagster_home / "dagster.yaml").exists():
        shutil.copyfile(REPO_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    return layout


def run(args: argparse.Namespace) -> int:
    """Ingest what is new in the landing folder and materialize the whole graph in-process."""
    import dagster as dg

    from musicrec_assets.cli.summary import print_summary
    from musicrec_assets.definitions import build_definitions

    home = _use_home(args.home)
    started = time.time()
    defs = build_definitions(home.root)
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=dg.DagsterInstance.get(),
        run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
        raise_on_error=False,
    )
    trained = result.asset_materializations_for_node("als_model") if result.success else []
    model = {k: v.value for k, v in trained[0].metadata.items()} if trained else None
    print_summary(home, started, result.run_id, result.success, model)
    return 0 if result.success else 1


def sample(args: argparse.Namespace) -> int:
    """Generate a synthetic landing folder (deterministic from --seed)."""
    from musicrec_assets.datasets import synthetic as generator

    if args.shape == "lastfm360k":
        counts = generator.generate_lastfm360k_shape(args.out, scale=args.scale, seed=args.seed)
    else:
        generator.write_landing(generator.generate_world(seed=args.seed), args.out)
        counts = None
    print(f"wrote a {args.shape} sample to {args.out}" + (f": {counts}" if counts else ""))
    return 0


def import_lastfm(args: argparse.Namespace) -> int:
    """Convert Last.fm HetRec 2011 files (artists.dat, user_artists.dat) into landing JSON."""
    from musicrec_assets.datasets.lastfm import import_lastfm as convert

    counts = convert(args.source, args.to)
    print(f"imported {counts} into {args.to}")
    return 0


def _read_only_warehouse(home: str | None):
    from musicrec_assets.warehouse.tables import connect

    return connect(_home(home).warehouse, read_only=True)


def _print(frame) -> None:
    print(frame.to_string(index=False) if len(frame) else "(no rows)")


def _champion_recommender(home: str | None):
    from musicrec_assets.tracking import registry

    root = _home(home).root
    registry.configure(root)
    return registry.load_champion(root)


def recommend_command(args: argparse.Namespace) -> int:
    """Top-N artists for a known user (from the tables) or a new listener (fold-in)."""
    if args.ratings:
        try:
            ratings = json.loads(Path(args.ratings).read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{args.ratings} is not valid JSON: {error}") from error
        if not isinstance(ratings, list):
            raise ValueError(f"{args.ratings} must hold a JSON array of ratings")
        version, recommender = _champion_recommender(args.home)
        answer = recommender.for_new_listener(ratings, args.n)
        if answer.unknown_artist_ids:
            print(f"ignored unknown artist ids: {', '.join(answer.unknown_artist_ids)}")
        print(f"recommendations for a new listener (model version {version}):")
        _print(answer.recommendations)
        return 0
    if not args.user_id:
        raise ValueError("give a USER_ID or --ratings FILE")
    from musicrec_assets.warehouse import queries

    with _read_only_warehouse(args.home) as con:
        frame = queries.user_recommendations(con, args.user_id, args.n)
    _print(frame)
    if args.explain and len(frame):
        _, recommender = _champion_recommender(args.home)
        verb = "rated" if recommender.model.params.feedback == "explicit" else "played"
        for row in frame.itertuples():
            because = recommender.explain(args.user_id, row.artist_id)
            reasons = ", ".join(
                f"{name or artist_id} {value:g}" + ("" if verb == "rated" else " times")
                for artist_id, name, value in zip(
                    because.artist_id, because.artist_name, because.value, strict=True
                )
            )
            print(f"  {row.rank}. {row.artist_name or row.artist_id}: because you {verb} {reasons}")
    return 0


def _artist_query(args: argparse.Namespace, title: str, query_name: str) -> int:
    from musicrec_assets.warehouse import queries

    with _read_only_warehouse(args.home) as con:
        artist_id, name = queries.resolve_artist(con, args.artist)
        print(title.format(name or artist_id))
        _print(getattr(queries, query_name)(con, artist_id, args.n))
    return 0


def similar_command(args: argparse.Namespace) -> int:
    """Artists most similar to ARTIST (id or exact name)."""
    return _artist_query(args, "artists similar to {}:", "similar_artists")


def top_users_command(args: argparse.Namespace) -> int:
    """Users to promote ARTIST (id or exact name) to."""
    return _artist_query(args, "users to promote {} to:", "artist_top_users")


def sql_command(args: argparse.Namespace) -> int:
    """Run a read-only SQL query against the warehouse and print the result."""
    import duckdb

    with _read_only_warehouse(args.home) as con:
        try:
            _print(con.execute(args.query).df())
        except duckdb.Error as error:
            raise ValueError(str(error).splitlines()[0]) from error
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="musicrec", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run_parser = commands.add_parser("run", help=run.__doc__)
    run_parser.add_argument("--home", help="MUSICREC_HOME (default: $MUSICREC_HOME or .musicrec)")
    run_parser.set_defaults(handler=run)

    sample_parser = commands.add_parser("sample", help=sample.__doc__)
    sample_parser.add_argument("--out", required=True, help="landing folder to write")
    sample_parser.add_argument("--seed", type=int, default=42)
    sample_parser.add_argument("--shape", choices=["seed", "lastfm360k"], default="seed")
    sample_parser.add_argument("--scale", type=float, default=1.0, help="lastfm360k size factor")
    sample_parser.set_defaults(handler=sample)

    import_parser = commands.add_parser("import-lastfm", help=import_lastfm.__doc__)
    import_parser.add_argument("source", help="folder with artists.dat and user_artists.dat")
    import_parser.add_argument("--to", required=True, help="landing folder to write")
    import_parser.set_defaults(handler=import_lastfm)

    def reader(name, handler, **kwargs):
        command = commands.add_parser(name, help=handler.__doc__, **kwargs)
        command.add_argument("--home", help="MUSICREC_HOME")
        command.set_defaults(handler=handler)
        return command

    recommend_parser = reader("recommend", recommend_command)
    recommend_parser.add_argument("user_id", nargs="?")
    recommend_parser.add_argument("-n", type=int, default=10)
    recommend_parser.add_argument("--explain", action="store_true")
    recommend_parser.add_argument("--ratings", help="JSON file of a new listener's ratings")
    for name, handler in (("similar", similar_command), ("top-users", top_users_command)):
        command = reader(name, handler)
        command.add_argument("artist", help="artist id or exact name")
        command.add_argument("-n", type=int, default=10)
    reader("sql", sql_command).add_argument("query")

    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (LookupError, ValueError, OSError, WarehouseBusy) as error:
        print(f"musicrec: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
