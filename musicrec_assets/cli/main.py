"""The ``musicrec`` command line."""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from musicrec_assets.home import REPO_ROOT, Home, check_mlflow_store
from musicrec_assets.warehouse.queries import Column, Table, fetch_table, missing
from musicrec_assets.warehouse.tables import DamagedStore, WarehouseBusy

if TYPE_CHECKING:
    import duckdb
    import pandas as pd


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
        preflight.check_stores(home, Path(os.environ["DAGSTER_HOME"]))
        run_config = preflight.run_config(
            args.config, "DEBUG" if args.verbose else "CRITICAL", _resource_flags(args)
        )
        approved = preflight.wait_for_writers(home.landing, args.wait_for_writers)
        preflight.require_ratings(home)
        # imported only now: Dagster and the graph take seconds to import, a preflight error none
        from musicrec_assets.cli import run_guard
        from musicrec_assets.cli.progress import Progress, libraries_quiet, step_labels
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
        new_files = ingest.not_yet_ingested(home.warehouse, approved)
        # the ingest steps take exactly the files approved above, as they were then: one that
        # appears or changes after the check is left for the next run
        tags = process_tags() | {
            "musicrec/trigger": "musicrec run",
            "musicrec/files": ", ".join(f.relative_path for f in new_files)[:1000] or "none new",
            landing.MANIFEST_TAG: landing.manifest(approved),
        }
        run_id = str(uuid.uuid4())
        progress = None if args.verbose else Progress(len(job.graph.nodes), labels=step_labels(job))
        print(f"run {run_id} ({full_job.name}): {len(new_files)} new landing file(s)", flush=True)
        quiet = contextlib.nullcontext() if args.verbose else libraries_quiet()
        with quiet, run_guard.watching(instance, run_id, progress=progress):
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
    if not result.success and (failure := preflight.run_failure(home, result.all_events)):
        line, status = failure
        print(f"musicrec: {line}", file=sys.stderr)
        return status
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

    out = Path(args.out)
    if args.shape == "lastfm360k":
        counts = generator.generate_lastfm360k_shape(out, scale=args.scale, seed=args.seed)
    else:
        world = generator.generate_world(seed=args.seed)
        generator.write_landing(world, out)
        counts = {kind: len(getattr(world, kind)) for kind in ("users", "artists", "ratings")}
    written = ", ".join(f"{count:,} {kind}" for kind, count in counts.items())
    print(f"wrote a {args.shape} sample to {out}: {written}")
    # `musicrec run` reads <home>/landing
    if out.resolve().name == "landing":
        print(f"next: musicrec run --home {shlex.quote(str(out.resolve().parent))}")
    else:
        landing = Home.from_env().landing
        print(f"next: cp -r {shlex.quote(str(out))}/. {shlex.quote(str(landing))}/ && musicrec run")
    return 0


def import_lastfm(args: argparse.Namespace) -> int:
    """Convert Last.fm HetRec 2011 files (artists.dat, user_artists.dat, and tags.dat with
    user_taggedartists.dat where present) into landing JSON."""
    from musicrec_assets.datasets.lastfm import import_lastfm as convert

    counts = convert(args.source, args.to)
    print(f"imported {counts} into {args.to}")
    return 0


def _read_only_warehouse(home: str | None):
    from musicrec_assets.warehouse import published
    from musicrec_assets.warehouse.tables import connect

    warehouse = _home(home).warehouse
    if published.damage(warehouse):  # published again from the working copy, where whole
        with contextlib.suppress(OSError):  # a read-only home: connect names the damage
            repaired = published.repair(warehouse, published.working_copy(warehouse))
            if repaired:
                _warn(repaired)
    return connect(warehouse, read_only=True)


# the widest line a reader prints
WIDTH = 100
# how many a reader lists without -n (and then says nothing when fewer are stored)
DEFAULT_COUNT = 10
# the shortest a cut name gets, before columns are wrapped instead
SHORTEST_NAME = 12


def _print(table: Table, name_column: str | None = None) -> None:
    print(_text(table, name_column))


def _text(table: Table, name_column: str | None = None) -> str:
    """``table`` in lines of at most WIDTH columns: the names in ``name_column`` cut (…) as
    far as that takes, then whatever is still too wide wrapped into blocks of columns."""
    from musicrec_assets.cli.table_text import table_text

    if not table:
        return "(no rows)"
    text = table_text(table)
    overflow = _widest(text) - WIDTH
    if overflow > 0 and name_column:
        names = table[name_column]
        keep = max(max(map(len, names)) - overflow, SHORTEST_NAME)
        cut = [name if len(name) <= keep else name[: keep - 1] + "…" for name in names]
        column = table.columns[name_column]
        text = table_text(Table(table.columns | {name_column: Column(column.type, cut)}))
    if _widest(text) > WIDTH:
        text = table_text(table, line_width=WIDTH)
    return text


def _widest(text: str) -> int:
    return max(map(len, text.splitlines()))


# the decimals a reader shows of each kind of number
DECIMALS = {"score": 3, "similarity": 3, "predicted_rating": 2}


def _shown(table: Table, names: dict[str, str], ids: bool) -> Table:
    """A reader's table as printed: ``names`` maps the name column to its heading, before
    which the rank goes and after which the id (with ``--ids``); numbers to their DECIMALS."""
    ((name_column, heading),) = names.items()
    id_column = name_column.replace("name", "id")
    columns = ["rank", name_column] + ([id_column] if ids else [])
    columns += [c for c in table.columns if c not in (*columns, id_column, name_column)]
    shown = {}
    for column in columns:
        values = table[column]
        type_ = table.columns[column].type
        if column == name_column:
            # a name the warehouse lacks is shown by its id
            column = heading
            values = [
                id_ if missing(name) else name
                for name, id_ in zip(values, table[id_column], strict=True)
            ]
        elif column in DECIMALS:
            places = DECIMALS[column]
            values = ["-" if missing(value) else f"{value:.{places}f}" for value in values]
            type_ = "VARCHAR"
        shown[column] = Column(type_, values)
    return Table(shown)


# the DuckDB type of a recommender's column of each numpy kind: its numbers, else its text
DUCKDB_TYPES = {"i": "BIGINT", "u": "UBIGINT", "f": "DOUBLE"}


def _table_of(frame: pd.DataFrame) -> Table:
    """The recommender's ``frame`` as the warehouse's readers answer."""
    return Table(
        {
            name: Column(DUCKDB_TYPES.get(values.dtype.kind, "VARCHAR"), values.tolist())
            for name, values in frame.items()
        }
    )


def _warn(message: str) -> None:
    print(f"musicrec: {message}", file=sys.stderr)


def _champion_recommender(home: str | None, version: str | None = None):
    """The champion's version and recommender, or ``version``'s."""
    from musicrec_assets.tracking import registry

    root = _home(home).root
    registry.use_existing_store(root)
    return registry.load_champion(root, version)


def _published_recommender(home: str | None):
    """The version and recommender of the model that made the published tables (the
    champion, but in the moment between a run moving the alias and publishing)."""
    from musicrec_assets.warehouse import queries

    with _read_only_warehouse(home) as con:
        made_by = queries.model_run(con, queries.published_versions(con))
    if made_by is None:
        return _champion_recommender(home)
    return made_by[0], _recommender_of(home, made_by)


def _recommender_of(home: str | None, made_by: tuple[str, str] | None):
    """The recommender of the model version and MLflow run ``made_by`` names: its downloaded
    copy, without MLflow, when it is there and whole; else fetched through the registry (the
    champion's, where the rows name no one version)."""
    from musicrec_assets.serving.recommender import Recommender
    from musicrec_assets.tracking import copies

    layout = _home(home)
    if made_by is not None and layout.mlflow_db.exists():
        check_mlflow_store(layout)  # a damaged store is named whether or not it is read
        folder = copies.whole_copy(layout.root, *made_by)
        if folder is not None:
            try:
                return Recommender.from_folder(folder)
            except copies.UNREADABLE:
                copies.discard(folder)  # changed with its sizes put back: downloaded again
    return _champion_recommender(home, None if made_by is None else made_by[0])[1]


@dataclass(frozen=True)
class _Newcomer:
    """Whom a ``--ratings`` file is of: ``recommend``'s a new listener's ratings of known
    artists, ``top-users``' a new artist's ratings by known listeners."""

    own_column: str  # the id every record of the file shares, which a record may leave out
    rated_column: str  # the id of whom or what each record rates
    stand_in: str  # the own id of the records that name none
    noun: str  # what the newcomer is, in words
    counted: str  # the plural of own_column's kind, in words
    repeated: str  # said of a rated id that two records name


NEW_LISTENER = _Newcomer(
    "user_id", "artist_id", "new listener", "listener", "users", "rated more than once"
)
NEW_ARTIST = _Newcomer(
    "artist_id", "user_id", "new artist", "artist", "artists", "rated it more than once"
)


def _ratings_file(path: Path, newcomer: _Newcomer) -> pd.DataFrame:
    """A newcomer's ratings file checked as the landing folder checks a ratings file (a
    JSON array or JSON Lines, gzip'd or not; the same reasons for the same records): one row
    per record, ``record_no`` (its line, or its place in the array), ``user_id``,
    ``artist_id``, ``rating``, ``plays`` and ``reason`` (None when it passes). The newcomer's
    own id may be left out; all of a file's records are one newcomer's."""
    import duckdb

    from musicrec_assets.warehouse import tables
    from musicrec_assets.warehouse.ingest import general_path, records
    from musicrec_assets.warehouse.landing import LandingFile, UnreadableFile

    stat = path.stat()
    file = LandingFile("ratings", path.resolve(), str(path), stat.st_size, stat.st_mtime_ns)
    with duckdb.connect() as con:
        tables.ensure_schema(con)
        try:
            # a name need not say the format here: the first character tells an array
            json_format = "array" if file.is_json_array() else "newline_delimited"
            general_path.parse_text(con, file, json_format)
        except UnreadableFile as error:
            raise ValueError(str(error)) from error
        own = newcomer.own_column
        con.execute(
            f"UPDATE parsed SET {own} = to_json(?::VARCHAR) "
            f"WHERE coalesce({own}::VARCHAR, 'null') = 'null'",
            [newcomer.stand_in],
        )
        # whether the model knows a user or an artist is the recommender's to say (it names the
        # ones it does not), so every id the file names counts as known here
        for table, column in (("users", "user_id"), ("artists", "artist_id")):
            con.execute(
                f"""INSERT INTO {table} BY NAME
                    SELECT DISTINCT {column} ->> '$' AS id, ? AS source_file,
                           now()::TIMESTAMP AS ingested_at
                    FROM parsed WHERE {column} ->> '$' IS NOT NULL""",
                [str(path)],
            )
        general_path.validate(con, "ratings")
        checked = con.execute(
            f"""SELECT r.record_no, v.user_id_value AS user_id, v.artist_id_value AS artist_id,
                       v.rating_value AS rating, v.plays_value AS plays, v.reason
                FROM validated v JOIN {records.RAW_RECORDS} r ON r.ordinal = v.record_no
                ORDER BY r.ordinal"""
        ).df()
    if checked.empty:
        raise ValueError(f"{path} holds no ratings")
    owners = checked.loc[checked["reason"].isna(), newcomer.own_column].unique()
    if len(owners) > 1:
        raise ValueError(
            f"{path} holds the ratings of {len(owners)} {newcomer.counted} "
            f"({', '.join(owners[:3])}{', …' if len(owners) > 3 else ''}): "
            f"give one {newcomer.noun}'s"
        )
    return checked


def _refusal(path: Path, checked: pd.DataFrame, newcomer: _Newcomer, names_of) -> str | None:
    """The one line that says why the records of ``checked`` (``_ratings_file``) with a
    reason are refused, each rated user or artist by name where ``names_of(ids)`` knows it;
    None if none is."""
    import pandas as pd

    from musicrec_assets.warehouse.ingest import DUPLICATE

    refused = checked[checked["reason"].notna()]
    if refused.empty:
        return None
    rated = newcomer.rated_column
    labels = dict(
        zip(checked[rated].dropna(), names_of(checked[rated].dropna().tolist()), strict=True)
    )

    def label(rated_id) -> str:
        name = labels.get(rated_id)
        return f"{name} ({rated_id})" if name else f"{rated} {rated_id!r}"

    repeated = refused.loc[refused["reason"] == DUPLICATE, rated].unique()
    parts = [
        f"{label(rated_id)} {newcomer.repeated} ("
        + ", ".join(f"#{n}" for n in checked.loc[checked[rated] == rated_id, "record_no"])
        + ")"
        for rated_id in repeated
    ]
    parts += [
        f"#{row.record_no}"
        + ("" if pd.isna(getattr(row, rated)) else f" {label(getattr(row, rated))}")
        + f": {row.reason}"
        for row in refused[refused["reason"] != DUPLICATE].itertuples()
    ]
    shown = "; ".join(parts[:5]) + (f"; and {len(parts) - 5} more" if len(parts) > 5 else "")
    return (
        f"{path}: {len(refused)} of its {len(checked)} ratings refused, as the landing folder "
        f"would refuse them: {shown}"
    )


def _ratings_given(checked: pd.DataFrame, newcomer: _Newcomer) -> list[dict]:
    """The records of ``checked`` (``_ratings_file``, none refused) as the recommender takes
    them: each rated id with its rating or plays."""
    import pandas as pd

    return [
        {key: value for key, value in record.items() if pd.notna(value)}
        for record in checked[[newcomer.rated_column, "rating", "plays"]].to_dict("records")
    ]


def _new_listener(args: argparse.Namespace) -> int:
    """``recommend --ratings FILE``: fold a new listener into the champion."""
    path = Path(args.ratings)
    checked = _ratings_file(path, NEW_LISTENER)
    version, recommender = _published_recommender(args.home)
    refusal = _refusal(path, checked, NEW_LISTENER, recommender.artist_names)
    if refusal:
        raise ValueError(refusal)
    ratings = _ratings_given(checked, NEW_LISTENER)
    answer = recommender.for_new_listener(ratings, args.n or DEFAULT_COUNT)
    if answer.unknown_artist_ids:
        print(f"ignored unknown artist ids: {', '.join(answer.unknown_artist_ids)}")
    table = _table_of(answer.recommendations)
    print(f"top {len(table)} for a new listener (model version {version}):")
    if recommender.feedback != "explicit":
        table = table.select(c for c in table.columns if c != "predicted_rating")
    _print(_shown(table, {"artist_name": "artist"}, args.ids), "artist")
    if args.explain and len(table):
        reasons = recommender.explain_new_listener(ratings, table["artist_id"])
        _print_reasons(table, reasons, recommender.feedback)
    return 0


def _print_reasons(picks: Table, reasons, feedback: str) -> None:
    """``--explain``: what the whole list draws on, once, then each pick's own reasons."""
    rated = feedback == "explicit"

    def listed(artists: pd.DataFrame) -> str:
        return ", ".join(
            f"{name or artist_id} {value:g}" + ("" if rated else " times")
            for artist_id, name, value in zip(
                artists["artist_id"], artists["artist_name"], artists["value"], strict=True
            )
        )

    def say(text: str, indent: str = "") -> None:
        print(textwrap.fill(text, WIDTH, initial_indent=indent, subsequent_indent=indent + "   "))

    verb = "rated" if rated else "played"
    print()
    if len(reasons.shared):
        say(
            f"why: every pick draws most on what you {verb} {listed(reasons.shared)}; "
            "beyond that, each pick's own reasons:"
        )
    else:
        say("why:")
    for rank, name, artist_id, own in zip(
        picks["rank"], picks["artist_name"], picks["artist_id"], reasons.by_pick, strict=True
    ):
        because = f"because you {verb} {listed(own)}" if len(own) else "nothing beyond that"
        say(f"{rank}. {name or artist_id}: {because}", "  ")


def _beyond_stored(con, table: str, per: str, shown: int, asked: int | None) -> None:
    """Say so when ``-n`` (None: not given) asks for more than ``table`` keeps."""
    from musicrec_assets.warehouse import queries

    if asked is None or shown >= asked:
        return
    stored = queries.stored_ranks(con, table)
    if stored < asked:
        _warn(
            f"{table} keeps the top {stored} per {per}: showing {shown}, not {asked} "
            "(the run's top_n setting)"
        )


def recommend_command(args: argparse.Namespace) -> int:
    """Top-N artists for a known user (from the tables) or a new listener (fold-in)."""
    if args.ratings:
        return _new_listener(args)
    from musicrec_assets.warehouse import queries

    folded_in = made_by = None
    with _read_only_warehouse(args.home) as con:
        table = queries.user_recommendations(con, args.user_id, args.n or DEFAULT_COUNT)
        _beyond_stored(con, "user_recommendations", "user", len(table), args.n)
        if args.explain:
            # imported only here: the fold-in's code brings pandas, numpy and scipy
            from musicrec_assets.warehouse import refresh

            # a listener whose list a fold-in made is explained from what it was folded in from
            folded_in = refresh.folded_in_ratings(con, args.user_id)
            made_by = queries.model_run(con, table["model_version"])
    user_names = [name for name in table["user_name"] if not missing(name)]
    who = f"{user_names[0]} ({args.user_id})" if user_names else args.user_id
    versions = ", ".join(dict.fromkeys(map(str, table["model_version"])))
    print(f"top {len(table)} for {who}, model version {versions}:")
    shown = table.select(c for c in table.columns if c not in ("user_name", "model_version"))
    _print(_shown(shown, {"artist_name": "artist"}, args.ids), "artist")
    if args.explain and len(table):
        # explained by the model that made the rows: a run killed after moving the champion
        # alias and before publishing leaves the tables on the version before it
        recommender = _recommender_of(args.home, made_by)
        picks = table["artist_id"]
        if folded_in is None:
            reasons = recommender.explain_user(args.user_id, picks)
        else:
            reasons = recommender.explain_new_listener(folded_in, picks)
        _print_reasons(table, reasons, recommender.feedback)
    return 0


def _artist_query(args: argparse.Namespace, title: str, table: str, names: dict) -> int:
    from musicrec_assets.warehouse import queries

    with _read_only_warehouse(args.home) as con:
        artist_id, name = queries.resolve_artist(con, args.artist)
        answer = getattr(queries, table)(con, artist_id, args.n or DEFAULT_COUNT)
        _beyond_stored(con, table, "artist", len(answer), args.n)
        from_tags = queries.placed_by_tags(con, artist_id)
    print(title.format(name or artist_id))
    if from_tags:
        print("(placed by its tags: nobody had rated it when the model was trained)")
    _print(_shown(answer, names, args.ids), *names.values())
    return 0


def similar_command(args: argparse.Namespace) -> int:
    """Artists most similar to ARTIST (id or exact name)."""
    return _artist_query(
        args, "artists similar to {}:", "similar_artists", {"similar_artist_name": "artist"}
    )


def _new_artist(args: argparse.Namespace) -> int:
    """``top-users --ratings FILE``: fold a new artist into the champion from its ratings (or
    plays) by known listeners, and list whom to promote it to."""
    from musicrec_assets.serving.fold_in import folds_in_items
    from musicrec_assets.warehouse import queries

    path = Path(args.ratings)
    checked = _ratings_file(path, NEW_ARTIST)
    version, recommender = _published_recommender(args.home)
    if not folds_in_items(recommender.model):
        raise ValueError(
            f"model version {version} cannot place a new artist: its ranking model's "
            f"{recommender.model.params.confidence} confidence needs each listener's totals, "
            "which it does not keep"
        )
    with _read_only_warehouse(args.home) as con:
        refusal = _refusal(path, checked, NEW_ARTIST, lambda ids: queries.user_names(con, ids))
        if refusal:
            raise ValueError(refusal)
        audience = recommender.for_new_artist(
            _ratings_given(checked, NEW_ARTIST), args.n or DEFAULT_COUNT
        )
        users = audience.users.assign(
            user_name=queries.user_names(con, audience.users["user_id"].tolist())
        )
    if audience.unknown_user_ids:
        print(f"ignored unknown user ids: {', '.join(audience.unknown_user_ids)}")
    print(f"users to promote a new artist to (model version {version}):")
    _print(_shown(_table_of(users), {"user_name": "user"}, args.ids), "user")
    return 0


def top_users_command(args: argparse.Namespace) -> int:
    """Users to promote ARTIST (id or exact name) to, or a new artist, from its ratings by
    known listeners (--ratings)."""
    if args.ratings:
        return _new_artist(args)
    return _artist_query(args, "users to promote {} to:", "artist_top_users", {"user_name": "user"})


def sql_command(args: argparse.Namespace) -> int:
    """Run SQL queries against the warehouse (nothing that writes) and print the result."""
    from musicrec_assets.warehouse import queries

    with _read_only_warehouse(args.home) as con:
        print(queries.run_query(con, args.query, _answer_text))
    return 0


def _answer_text(result: duckdb.DuckDBPyConnection) -> str:
    """An executed query's rows as ``_print`` prints them, through pandas only where the
    answer holds a type that ``table_text`` does not print as pandas does, or two columns of
    one name (which pandas tells apart)."""
    from musicrec_assets.cli.table_text import printable

    names = [name for name, *_ in result.description]
    types = [str(type_) for _, type_, *_ in result.description]
    if printable(types) and len(set(names)) == len(names):
        return _text(fetch_table(result))
    frame = result.df()
    if frame.empty:
        return "(no rows)"
    text = frame.to_string(index=False)
    return frame.to_string(index=False, line_width=WIDTH) if _widest(text) > WIDTH else text


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


DESCRIPTION = (
    "Artist recommendations from a landing folder of JSON files: `musicrec run` ingests the "
    "files and trains, the other commands read what it made."
)
EPILOG = (
    "Start with `make demo` (or `musicrec sample --out .musicrec/landing` and `musicrec run`), "
    "then `musicrec recommend USER_ID --explain`. Every command takes --home (default: "
    "$MUSICREC_HOME, else .musicrec) and -h."
)
HOME_HELP = "the musicrec home to use (default: $MUSICREC_HOME, else .musicrec)"


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser: each command, its flags and their help."""
    parser = _Parser(prog="musicrec", description=DESCRIPTION, epilog=EPILOG)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run_parser = commands.add_parser("run", help=run.__doc__, description=run.__doc__)
    run_parser.add_argument("--home", help=HOME_HELP)
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

    sample_parser = commands.add_parser("sample", help=sample.__doc__, description=sample.__doc__)
    sample_parser.add_argument(
        "--out", required=True, help="landing folder to write, e.g. .musicrec/landing"
    )
    sample_parser.add_argument(
        "--seed", type=int, default=42, help="the same seed writes the same files (default 42)"
    )
    sample_parser.add_argument(
        "--shape",
        choices=["seed", "lastfm360k"],
        default="seed",
        help="seed: 300 users rating 10,000 artists (the demo's); lastfm360k: play counts "
        "shaped like Last.fm-360K (default seed)",
    )
    sample_parser.add_argument(
        "--scale", type=float, default=1.0, help="lastfm360k's size, 1 the full size (default 1)"
    )
    sample_parser.set_defaults(handler=sample)

    import_parser = commands.add_parser(
        "import-lastfm", help=import_lastfm.__doc__, description=import_lastfm.__doc__
    )
    import_parser.add_argument("source", help="folder with artists.dat and user_artists.dat")
    import_parser.add_argument("--to", required=True, help="landing folder to write")
    import_parser.set_defaults(handler=import_lastfm)

    def reader(name, handler):
        command = commands.add_parser(name, help=handler.__doc__, description=handler.__doc__)
        command.add_argument("--home", help=HOME_HELP)
        command.set_defaults(handler=handler)
        return command

    def listing(command, what: str) -> None:
        command.add_argument(
            "-n", type=_count, help=f"how many {what} to show (default {DEFAULT_COUNT})"
        )
        command.add_argument(
            "--ids", action="store_true", help="show each one's id beside its name"
        )

    def newcomer_option(command, whose: str, record: str) -> None:
        command.add_argument(
            "--ratings",
            metavar="FILE",
            help=f"{whose}, as a landing ratings file takes them (a JSON array or JSON Lines "
            f'of {record}; "plays" for play counts)',
        )

    recommend_parser = reader("recommend", recommend_command)
    recommend_parser.add_argument(
        "user_id", nargs="?", metavar="USER_ID", help="a known user's id (or give --ratings)"
    )
    listing(recommend_parser, "artists")
    recommend_parser.add_argument(
        "--explain",
        action="store_true",
        help="say why each pick: the rated artists that weigh most in its score",
    )
    newcomer_option(
        recommend_parser, "a new listener's ratings", '{"artist_id": ..., "rating": ...}'
    )
    similar_parser = reader("similar", similar_command)
    similar_parser.add_argument("artist", metavar="ARTIST", help="artist id or exact name")
    listing(similar_parser, "artists")
    top_users_parser = reader("top-users", top_users_command)
    top_users_parser.add_argument(
        "artist", nargs="?", metavar="ARTIST", help="artist id or exact name (or give --ratings)"
    )
    listing(top_users_parser, "users")
    newcomer_option(
        top_users_parser,
        "a new artist's ratings by known listeners",
        '{"user_id": ..., "rating": ...}',
    )
    reader("sql", sql_command).add_argument(
        "query",
        metavar="SQL",
        help='e.g. "FROM user_recommendations_named LIMIT 10" (queries only)',
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "run" and args.spark_master and args.backend == "local":
        parser.error("--spark-master trains on Spark: it cannot go with --backend local")
    if args.command == "recommend" and bool(args.user_id) == bool(args.ratings):
        parser.error("recommend takes a USER_ID or --ratings FILE (a new listener), one of them")
    if args.command == "top-users" and bool(args.artist) == bool(args.ratings):
        parser.error("top-users takes an ARTIST or --ratings FILE (a new artist), one of them")
    try:
        return args.handler(args)
    except DamagedStore as error:
        # a file of the home that is not what it must be: the message names it and the remedy
        print(f"musicrec: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        from musicrec_assets.cli.preflight import disk_full, error_chain

        full = disk_full(_home(getattr(args, "home", None)), error_chain(error))
        if full:
            print(f"musicrec: {full}", file=sys.stderr)
            return 1
        if isinstance(error, LookupError | ValueError | OSError | WarehouseBusy):
            print(f"musicrec: {error}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
