"""Issue 26: the rejected-share check judges each file a run ingested on its own, so one bad
file among thousands of good rows fails it, and a later run is judged by its own files."""

import json

import dagster as dg
from harness import FAST_SETTINGS, small_world

from musicrec_assets.datasets.synthetic import write_landing
from musicrec_assets.definitions import build_definitions

INGEST = [dg.AssetKey(kind) for kind in ("users", "artists", "ratings")]


def write_jsonl(path, records) -> None:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))


def rejected_share_check(result) -> dg.AssetCheckEvaluation:
    [evaluation] = [
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "rejected_share_below_threshold"
    ]
    return evaluation


def test_one_bad_file_fails_the_check_and_a_later_run_is_judged_by_its_own_files(tmp_path):
    world = small_world()
    write_landing(world, tmp_path / "landing")
    user, artist = world.ratings.iloc[0][["user_id", "artist_id"]]
    bad = [
        {"user_id": user, "artist_id": artist, "rating": 4.0},
        {"user_id": user, "artist_id": artist, "rating": 9.0},
        {"user_id": user, "artist_id": artist, "rating": "loud"},
        {"user_id": user, "rating": 3.0},
        [user, artist, 3.0],
    ]
    write_jsonl(tmp_path / "landing" / "ratings" / "bad.jsonl", bad)
    job = build_definitions(tmp_path, FAST_SETTINGS).resolve_implicit_global_asset_job_def()
    instance = dg.DagsterInstance.ephemeral()

    def ingest_run():
        result = job.execute_in_process(
            instance=instance, asset_selection=INGEST, raise_on_error=False
        )
        assert result.success
        return rejected_share_check(result)

    first = ingest_run()
    # 4 bad rows of 7,005: a share of every row read would pass
    assert not first.passed and first.severity == dg.AssetCheckSeverity.WARN
    meta = {name: value.value for name, value in first.metadata.items()}
    assert meta["files_ingested"] == 4  # users, artists, ratings and the bad file
    assert meta["worst_file"] == "ratings/bad.jsonl"
    assert meta["worst_file_rejected_share"] == 0.8
    assert first.description == "ratings/bad.jsonl: 4 of 5 rows rejected"

    later = world.ratings.iloc[1:4][["user_id", "artist_id"]].assign(rating=2.5)
    write_jsonl(tmp_path / "landing" / "ratings" / "later.jsonl", later.to_dict("records"))
    second = ingest_run()
    assert second.passed
    meta = {name: value.value for name, value in second.metadata.items()}
    assert meta["files_ingested"] == 1 and meta["worst_file"] == "ratings/later.jsonl"
