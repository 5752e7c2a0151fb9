"""An ingest run takes exactly the landing files it was started for, as they were approved:
never a file that appeared or changed after the landing sensor's (or `musicrec run`'s) look,
half-written. A run started without a manifest takes the files that hold still."""

import json
import time
from pathlib import Path

import dagster as dg
import duckdb

from musicrec_assets.definitions import build_definitions
from musicrec_assets.defs.automation import landing_sensor
from musicrec_assets.defs.resources import MusicrecHome
from musicrec_assets.warehouse import landing

USERS = [{"id": f"u{n}"} for n in range(6)]
ARTISTS = [{"id": f"a{n}"} for n in range(10)]
LATE = [
    {"user_id": user["id"], "artist_id": artist["id"], "plays": 5}
    for user in USERS
    for artist in ARTISTS
]


def drop(home: Path, relative: str, records: list[dict]) -> Path:
    path = home / "landing" / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def half_written(home: Path, relative: str, records: list[dict], lines: int) -> Path:
    """The first ``lines`` records and half of the next, as a writer leaves them midway."""
    text = "".join(json.dumps(record) + "\n" for record in records)
    cut = sum(len(json.dumps(record)) + 1 for record in records[:lines]) + 10
    path = home / "landing" / relative
    path.write_text(text[:cut])
    return path


def sensor_request(home: Path, instance, cursor=None):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"home": MusicrecHome(path=str(home))}
    )
    result = landing_sensor(context)
    return result, context.cursor


def ingest(home: Path, instance, tags: dict | None = None) -> dg.ExecuteInProcessResult:
    job = build_definitions(home).resolve_job_def("ingest_job")
    result = job.execute_in_process(instance=instance, tags=tags or {})
    assert result.success
    return result


def ledger(home: Path) -> list:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(
            """SELECT path, rows_read, rows_accepted, rows_rejected FROM ingested_files
               WHERE kind = 'ratings' ORDER BY path, ingested_at"""
        ).fetchall()


def test_a_file_that_appears_after_the_sensor_approved_the_run_waits(tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    drop(tmp_path, "users/u.jsonl", USERS)
    drop(tmp_path, "artists/a.jsonl", ARTISTS)
    drop(tmp_path, "ratings/first.jsonl", LATE[:5])
    _, cursor = sensor_request(tmp_path, instance)
    request, cursor = sensor_request(tmp_path, instance, cursor)
    assert isinstance(request, dg.RunRequest)

    # between the sensor's look and the run's steps, a writer is midway through a new file
    late = half_written(tmp_path, "ratings/late.jsonl", LATE, lines=8)
    ingest(tmp_path, instance, request.tags)
    assert ledger(tmp_path) == [("ratings/first.jsonl", 5, 5, 0)]

    late.write_text("".join(json.dumps(record) + "\n" for record in LATE))
    time.sleep(0.01)
    for _ in range(3):
        request, cursor = sensor_request(tmp_path, instance, cursor)
        if isinstance(request, dg.RunRequest):
            break
    assert json.loads(request.tags[landing.MANIFEST_TAG]) == {
        "ratings/late.jsonl": landing.scan(tmp_path / "landing")[-1].stamp
    }
    ingest(tmp_path, instance, request.tags)
    assert ledger(tmp_path) == [
        ("ratings/first.jsonl", 5, 5, 0),
        ("ratings/late.jsonl", len(LATE), len(LATE), 0),
    ]


def test_a_file_written_to_after_it_was_approved_waits(tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    drop(tmp_path, "users/u.jsonl", USERS)
    drop(tmp_path, "artists/a.jsonl", ARTISTS)
    ratings = drop(tmp_path, "ratings/r.jsonl", LATE[:8])
    approved = landing.manifest(landing.scan(tmp_path / "landing"))
    with ratings.open("a") as stream:
        stream.write(json.dumps(LATE[8])[:10])
    result = ingest(tmp_path, instance, {landing.MANIFEST_TAG: approved})
    assert ledger(tmp_path) == []
    assert result.asset_materializations_for_node("ratings")[0].metadata["new_files"].value == 0


def test_a_run_without_a_manifest_leaves_a_file_still_being_written(tmp_path, monkeypatch):
    instance = dg.DagsterInstance.ephemeral()
    drop(tmp_path, "users/u.jsonl", USERS)
    drop(tmp_path, "artists/a.jsonl", ARTISTS)
    drop(tmp_path, "ratings/done.jsonl", LATE[:3])
    growing = half_written(tmp_path, "ratings/growing.jsonl", LATE, lines=8)

    class WriterAppendsMeanwhile:
        """The landing module's clock, under which a writer appends during each wait."""

        time_ns = staticmethod(time.time_ns)

        @staticmethod
        def sleep(seconds):
            time.sleep(seconds)
            with growing.open("a") as stream:
                stream.write("x")

    monkeypatch.setattr(landing, "time", WriterAppendsMeanwhile)
    ingest(tmp_path, instance)
    assert ledger(tmp_path) == [("ratings/done.jsonl", 3, 3, 0)]
