"""The ``musicrec`` command line."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from musicrec_assets.resources import REPO_ROOT, default_home


def _use_home(home: str | None) -> Path:
    """Point this process (and the Dagster instance) at one MUSICREC_HOME."""
    path = Path(home).resolve() if home else default_home()
    os.environ["MUSICREC_HOME"] = str(path)
    for kind in ("users", "artists", "ratings"):
        (path / "landing" / kind).mkdir(parents=True, exist_ok=True)
    if not os.environ.get("DAGSTER_HOME"):
        dagster_home = path / "dagster"
        dagster_home.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
        os.environ["DAGSTER_HOME"] = str(dagster_home)
    return path


def run(args: argparse.Namespace) -> int:
    """Ingest what is new in the landing folder and materialize the whole graph in-process."""
    import dagster as dg

    from musicrec_assets.definitions import build_definitions
    from musicrec_assets.summary import print_summary

    home = _use_home(args.home)
    started = time.time()
    defs = build_definitions(home)
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=dg.DagsterInstance.get(),
        run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
        raise_on_error=False,
    )
    print_summary(home, since=started, run_id=result.run_id, success=result.success)
    return 0 if result.success else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="musicrec", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run_parser = commands.add_parser("run", help=run.__doc__)
    run_parser.add_argument("--home", help="MUSICREC_HOME (default: $MUSICREC_HOME or .musicrec)")
    run_parser.set_defaults(handler=run)

    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
