"""Jobs, sensors and the schedule: ingest what lands, retrain when ratings arrive, retune daily.

* ``landing_sensor`` requests one ``ingest_job`` run for the files that became ready together;
  with none, a run of ``ratings`` alone taking no file when listeners wait for a fold-in.
* ``ingest_job``'s ``ratings`` step folds the listeners it brought ratings for into the
  champion and replaces their lists (``warehouse/refresh.py``): fresh lists without retraining.
* ``retrain_sensor`` requests one ``retrain_job`` run (training and serving, reusing the last
  tuned params) per ingest run that brought at least ``min_new_ratings`` new ratings, when it is
  worth it: no champion yet, artists the champion cannot place, or the ratings since it was
  trained reach ``retrain_share`` of those it saw (a tenth by default; or ``retrain_ratings``);
  with neither set, after every such ingest run. On a home with no tuning yet, the run tunes
  too.
* ``retrain_schedule`` runs the whole graph, tuning included (default daily 03:00 UTC).

Before it requests anything, each sensor tick fails the runs of this host whose processes are
gone and frees their pool slots (`recovery.recover_abandoned_runs`), so a killed run never
wedges the runs it is about to request. Every run of these jobs carries its host as a tag, for
the recovery to tell which runs it may judge.
"""

import hashlib
import json
import os

import dagster as dg

from musicrec_assets.defs.ingest.assets import ratings
from musicrec_assets.defs.recovery import host_tags, recover_abandoned_runs
from musicrec_assets.defs.resources import ModelSettings, MusicrecHome
from musicrec_assets.defs.training.assets import als_tuning
from musicrec_assets.warehouse import ingest, landing, model_tables, refresh
from musicrec_assets.warehouse.tables import connect

# Sensor-triggered runs execute in one process by default: their writing steps queue on the
# `duckdb` pool anyway, and a process per step costs seconds of imports each on a small machine.
# `execution: {config: {multiprocess: {}}}` in run config switches back.
IN_ONE_PROCESS = {"execution": {"config": {"in_process": {}}}}

TRAINING_AND_SERVING = dg.AssetSelection.groups("training", "serving")

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.groups("ingest"),
    config=IN_ONE_PROCESS,
    tags=host_tags(),
    description="Ingest the files that are new in the landing folder.",
)
retrain_job = dg.define_asset_job(
    "retrain_job",
    config=IN_ONE_PROCESS,
    selection=TRAINING_AND_SERVING - dg.AssetSelection.assets(als_tuning),
    tags=host_tags(),
    description="Rebuild matrix, split, model and recommendation tables with the last tuned "
    "params.",
)
full_job = dg.define_asset_job(
    "full_job",
    selection=dg.AssetSelection.all(),
    tags=host_tags(),
    description="Everything: ingest, tune, train, publish (what `musicrec run` does).",
)


def _recover_abandoned_runs(context: dg.SensorEvaluationContext) -> None:
    for line in recover_abandoned_runs(context.instance):
        context.log.warning(f"recovered {line}")


@dg.sensor(
    job=ingest_job,
    minimum_interval_seconds=int(os.environ.get("MUSICREC_SENSOR_INTERVAL", "30")),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Ingests files that appeared or changed in the landing folder at the first "
    f"tick that finds them complete: not written to in the last {landing.SETTLE_SECONDS:g} s, "
    "or unchanged since the tick before (write large files under .part and rename them).",
)
def landing_sensor(context: dg.SensorEvaluationContext, home: MusicrecHome):
    _recover_abandoned_runs(context)
    cursor = json.loads(context.cursor) if context.cursor else {}
    readiness = landing.ready_files(
        landing.scan(home.layout.landing), cursor.get("requested", {}), cursor.get("pending", {})
    )
    context.update_cursor(
        json.dumps({"requested": readiness.requested, "pending": readiness.pending})
    )
    ready = ingest.not_yet_ingested(home.layout.warehouse, readiness.ready)
    if not ready:
        waiting = f"nothing new ready ({len(readiness.pending)} file(s) waiting to hold still)"
        return _fold_in_request(context, home) or dg.SkipReason(waiting)
    batch = sorted(f"{f.relative_path}@{readiness.requested[f.relative_path]}" for f in ready)
    return dg.RunRequest(
        run_key=hashlib.sha256("\n".join(batch).encode()).hexdigest(),
        tags={
            "musicrec/files": ", ".join(f.relative_path for f in ready)[:1000],
            # the run's ingest steps take these files, as they were approved, and no others
            landing.MANIFEST_TAG: landing.manifest(ready),
        },
    )


# runs whose end may change what a fold-in has to do: it waits for them
_UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def _fold_in_request(context: dg.SensorEvaluationContext, home: MusicrecHome):
    """A run of ``ratings`` alone, taking no file, when listeners or artists wait for a
    fold-in that no ingest run did (tables rebuilt from a champion that did not see their
    ratings, when the retrain's version did not win; a fold-in that failed or found the tables
    in the middle of a retrain); None when none wait, or an ingest or retrain run is under way
    (it folds them in, or rebuilds the tables)."""
    if not home.layout.warehouse.exists():
        return None
    with connect(home.layout.warehouse, read_only=True) as con:
        todo = refresh.pending(con)
    if todo is None:
        return None
    for job in (ingest_job.name, retrain_job.name, full_job.name):
        if context.instance.get_runs(dg.RunsFilter(job_name=job, statuses=_UNFINISHED), limit=1):
            return None
    waiting = "\n".join([todo.version, *todo.user_ids, "", *todo.artist_ids])
    return dg.RunRequest(
        # once per state: listeners fold-in cannot place (they rated only artists the champion
        # does not know) are not asked for again and again
        run_key=f"fold-in-{hashlib.sha256(waiting.encode()).hexdigest()}",
        asset_selection=[ratings.key],
        tags={
            "musicrec/fold_in": f"{len(todo.user_ids)} listener(s), {len(todo.artist_ids)} "
            f"artist(s) waiting for v{todo.version}",
            landing.MANIFEST_TAG: landing.manifest([]),
        },
    )


@dg.asset_sensor(
    asset_key=ratings.key,
    job=retrain_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Retrains (without retuning, unless there is no tuning yet) after an ingest "
    "run that brought new ratings, when the ratings since the champion was trained pass the "
    "retrain threshold or bring artists it cannot place; smaller drops are served by fold-in.",
)
def retrain_sensor(
    context: dg.SensorEvaluationContext,
    asset_event: dg.EventLogEntry,
    settings: ModelSettings,
    home: MusicrecHome,
):
    _recover_abandoned_runs(context)
    run = context.instance.get_run_by_id(asset_event.run_id)
    if run is None or run.job_name != ingest_job.name:
        return dg.SkipReason("ratings were materialized by a run that trains anyway")
    metadata = asset_event.asset_materialization.metadata
    new = sum(
        metadata[key].value for key in ("rows_accepted", "retried_and_accepted") if key in metadata
    )
    if new < settings.min_new_ratings:
        return dg.SkipReason(f"{new} new rating(s), fewer than {settings.min_new_ratings}")
    tags = {"musicrec/new_ratings": str(new)}
    worth_it = _retrain_worth_it(home, settings)
    if worth_it is not None:
        return dg.SkipReason(worth_it)
    if _tuned(home):
        return dg.RunRequest(run_key=asset_event.run_id, tags=tags)
    # a first training: retrain_job's assets and als_tuning, whose params als_model needs
    first_training = TRAINING_AND_SERVING.resolve(context.repository_def.asset_graph)
    return dg.RunRequest(
        run_key=asset_event.run_id,
        asset_selection=sorted(first_training),
        tags={**tags, "musicrec/first_training": "true"},
    )


def _retrain_worth_it(home: MusicrecHome, settings: ModelSettings) -> str | None:
    """None when a retrain is worth it, else why not (fold-in serves the new ratings)."""
    share, count = settings.retrain_share, settings.retrain_ratings
    if (share is None and count is None) or not home.layout.warehouse.exists():
        return None
    with connect(home.layout.warehouse, read_only=True) as con:
        arrived = refresh.freshness(con)
    if arrived is None or arrived.new_artists > 0:  # no champion, or what it cannot place
        return None
    if (share is not None and arrived.share >= share) or (
        count is not None and arrived.since >= count
    ):
        return None
    passed = [] if share is None else [f"{share:.1%}"]
    thresholds = " or ".join(passed + ([] if count is None else [f"{count} ratings"]))
    return (
        f"fold-in serves them: {arrived.since} rating(s) since v{arrived.version} was trained, "
        f"{arrived.share:.1%} of the {arrived.trained_on} it saw (retrain at {thresholds})"
    )


def _tuned(home: MusicrecHome) -> bool:
    """Whether the warehouse holds a tuning for ``als_model`` to reuse (one made before the
    ranking model does not count: the first retrain after the upgrade tunes again)."""
    if not home.layout.warehouse.exists():
        return False
    with connect(home.layout.warehouse, read_only=True) as con:
        return model_tables.has_current_tuning(con)


retrain_schedule = dg.ScheduleDefinition(
    name="retrain_schedule",
    job=full_job,
    cron_schedule=os.environ.get("MUSICREC_RETRAIN_CRON", "0 3 * * *"),
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Full retraining with tuning (cron from MUSICREC_RETRAIN_CRON).",
)
