"""The ``musicrec`` command line."""

from __future__ import annotations

import argparse
import json
import logging
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
    from musicrec_assets.cli.preflight import require_writable

    layout = _home(home)
    os.environ["MUSICREC_HOME"] = str(layout.root)
    if home or not os.environ.get("DAGSTER_HOME"):
        os.environ["DAGSTER_HOME"] = str(layout.dagster)
    dagster_home = Path(os.environ["DAGSTER_HOME"])
    require_writable(layout, dagster_home)
    layout.create_landing()
    if not (dagster_home / "dagster.yaml").exists():
        # under a name of its own first: a second run starting now never reads half a file
        staged = dagster_home / f".dagster.yaml.{os.getpid()}.part"
        shutil.copyfile(REPO_ROOT / "dagster.yaml", staged)
        os.replace(staged, dagster_home / "dagster.yaml")
    return layout


def _dagster_instance():
    """The Dagster instance at DAGSTER_HOME, its storage created by one process at a time: two
    first runs on a new home would otherwise both create (and migrate) its sqlite tables."""
    import fcntl

    import dagster as dg

    with open(Path(os.environ["DAGSTER_HOME"]) / ".musicrec-instance.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        instance = dg.DagsterInstance.get()
        instance.get_runs(limit=1)
        return instance


def run(args: argparse.Namespace) -> int:
    """Ingest what is new in the landing folder and materialize the whole graph in-process."""
    import uuid

    from musicrec_assets.cli import preflight

    try:
        home = _use_home(args.home)
        run_config = preflight.run_config(
            args.config, "DEBUG" if args.verbose else "CRITICAL", _resource_flags(args)
        )
        preflight.wait_for_writers(home.landing, args.wait_for_writers)
        preflight.require_ratings(home)
        # imported only now: Dagster and the graph take seconds to import, a preflight error none
        from musicrec_assets.cli import run_guard
        from musicrec_assets.cli.progress import Progress
        from musicrec_assets.cli.summary import print_summary
        from musicrec_assets.definitions import build_definitions
        from musicrec_assets.defs.automation import full_job
        from musicrec_assets.defs.recovery import process_tags, recover_abandoned_runs
        from musicrec_assets.warehouse import ingest, landing

        instance = _dagster_instance()
        for line in recover_abandoned_runs(instance):
            print(f"recovered {line}")
        started = time.time()
        job = build_definitions(home.root).resolve_job_def(full_job.name)
        new_files = ingest.not_yet_ingested(home.warehouse, landing.scan(home.landing))
        tags = process_tags() | {
            "musicrec/trigger": "musicrec run",
            "musicrec/files": ", ".join(f.relative_path for f in new_files)[:1000] or "none new",
        }
        run_id = str(uuid.uuid4())
        progress = None if args.verbose else Progress(len(job.graph.nodes))
        if progress:  # MLflow's notes on each store migration and version, for the same reason
            logging.getLogger("mlflow").setLevel(logging.WARNING)
        print(f"run {run_id} ({full_job.name}): {len(new_files)} new landing file(s)", flush=True)
        with run_guard.watching(instance, run_id, progress=progress):
            result = job.execute_in_process(
                instance=instance,
                run_config=run_config,
                run_id=run_id,
                tags=tags,
                raise_on_error=False,
            )
    except KeyboardInterrupt:
        print("musicrec: interrupted before the run started", file=sys.stderr)
        return 130
    trained = result.asset_materializations_for_node("als_model")
    model = {k: v.value for k, v in trained[0].metadata.items()} if trained else None
    print_summary(home, started, result.run_id, result.success, model)
    return 0 if result.success else 1


def _resource_flags(args: argparse.Namespace) -> dict[str, dict]:
    """The resources' run config that ``run``'s flags stand for (absent flags say nothing)."""
    flags = {}
    if args.backend or args.spark_master:
        # a Spark master alone means: train there
        flags["settings"] = {"backend": args.backend or "spark"}
    if args.spark_master:
        flags["spark"] = {"master": args.spark_master}
    return flags


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
    registry.use_existing_store(root)
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
        frame = answer.recommendations
        _print(
            frame if recommender.feedback == "explicit" else frame.drop(columns="predicted_rating")
        )
        return 0
    if not args.user_id:
        raise ValueError("give a USER_ID or --ratings FILE")
    from musicrec_assets.warehouse import queries

    with _read_only_warehouse(args.home) as con:
        frame = queries.user_recommendations(con, args.user_id, args.n)
    _print(frame)
    if args.explain and len(frame):
        _, recommender = _champion_recommender(args.home)
        rated = recommender.feedback == "explicit"
        for row in frame.itertuples():
            because = recommender.explain(args.user_id, row.artist_id)
            reasons = ", ".join(
                f"{name or artist_id} {value:g}" + ("" if rated else " times")
                for artist_id, name, value in zip(
                    because.artist_id, because.artist_name, because.value, strict=True
                )
            )
            guess = recommender.predicted_rating(args.user_id, row.artist_id)
            expected = "" if guess is None else f" (you would rate it {guess:.1f})"
            verb = "rated" if rated else "played"
            print(
                f"  {row.rank}. {row.artist_name or row.artist_id}{expected}: "
                f"because you {verb} {reasons}"
            )
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
    """Run SQL queries against the warehouse (nothing that writes) and print the result."""
    from musicrec_assets.warehouse import queries

    with _read_only_warehouse(args.home) as con:
        _print(queries.run_query(con, args.query))
    return 0


def _count(text: str) -> int:
    """``-n``: how many rows to show, at least one."""
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return count


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line too, as every other error (the usage is under ``--help``)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message}\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="musicrec", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run_parser = commands.add_parser("run", help=run.__doc__)
    run_parser.add_argument("--home", help="MUSICREC_HOME (default: $MUSICREC_HOME or .musicrec)")
    run_parser.add_argument("--config", help="YAML file of Dagster run config (e.g. settings)")
    run_parser.add_argument(
        "--backend",
        choices=["local", "spark"],
        help="who fits ALS (run config settings.backend; default local)",
    )
    run_parser.add_argument(
        "--spark-master",
        metavar="URL",
        help="train on this Spark master (implies --backend spark), e.g. "
        "spark://127.0.0.1:7077 from `make spark-cluster` (run config spark.master; "
        "default local[*])",
    )
    run_parser.add_argument(
        "--wait-for-writers",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for landing files still being written (default 60)",
    )
    run_parser.add_argument(
        "--verbose", action="store_true", help="Dagster's own log lines instead of the progress"
    )
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
    recommend_parser.add_argument("-n", type=_count, default=10)
    recommend_parser.add_argument("--explain", action="store_true")
    recommend_parser.add_argument("--ratings", help="JSON file of a new listener's ratings")
    for name, handler in (("similar", similar_command), ("top-users", top_users_command)):
        command = reader(name, handler)
        command.add_argument("artist", help="artist id or exact name")
        command.add_argument("-n", type=_count, default=10)
    reader("sql", sql_command).add_argument("query")

    args = parser.parse_args(argv)
    if args.command == "run" and args.spark_master and args.backend == "local":
        parser.error("--spark-master trains on Spark: it cannot go with --backend local")
    try:
        return args.handler(args)
    except (LookupError, ValueError, OSError, WarehouseBusy) as error:
        print(f"musicrec: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
