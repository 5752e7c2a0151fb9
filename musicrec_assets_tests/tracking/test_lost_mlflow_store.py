"""Issue 27 item 10: an MLflow store deleted while the warehouse still holds the tables of
its model versions. The new store numbers its models after the newest version the warehouse
names (versions up to it are reserved: registered and deleted at once), so two different
models are never both published as one `model_version`."""

import duckdb
import mlflow
from copied_home import copy_home
from mlflow.tracking import MlflowClient

from musicrec_assets.home import Home
from musicrec_assets.tracking import registry


def newest_version(home) -> int:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return max(
            int(version)
            for (version,) in con.execute(
                "SELECT model_version FROM model_metrics UNION SELECT model_version "
                "FROM user_recommendations"
            ).fetchall()
        )


def register(home) -> str:
    registry.configure(home)
    with mlflow.start_run():
        mlflow.log_text("a model", "model/MLmodel")
        uri = mlflow.get_artifact_uri("model")
    client = MlflowClient()
    if not client.search_registered_models(f"name = '{registry.REGISTERED_MODEL}'"):
        client.create_registered_model(registry.REGISTERED_MODEL)
    return client.create_model_version(registry.REGISTERED_MODEL, uri).version


def test_a_new_store_numbers_its_models_after_the_warehouses(pipeline_home, tmp_path):
    home = copy_home(pipeline_home[0], tmp_path / "home")
    newest = newest_version(home)
    (home / "mlflow.db").unlink()
    assert int(register(home)) == newest + 1
    model = MlflowClient().get_registered_model(registry.REGISTERED_MODEL)
    assert model.tags[registry.RESERVED_TAG].startswith(f"1-{newest}:")
    assert registry.champion(MlflowClient()) is None  # no reserved version answers


def test_a_store_of_a_home_without_models_starts_at_one(tmp_path):
    assert int(register(tmp_path)) == 1


def test_a_store_restored_from_an_older_backup_numbers_after_the_warehouse(pipeline_home, tmp_path):
    """Issue 27's variant of item 10, following the damaged store's own advice ("restore it
    from a backup"): a backup taken before the last trainings gave the next model a number
    the warehouse's tables already named."""
    home = copy_home(pipeline_home[0], tmp_path / "home")
    backed_up = newest_version(home)  # the store as it is, taken as the backup
    trained_since = backed_up + 2
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        con.execute(
            """INSERT INTO model_metrics
               SELECT ?, 'missed', now(), 'explicit', 'ranking', 'ndcg_at_10', 0.5""",
            [str(trained_since)],
        )
    assert int(register(home)) == trained_since + 1
    model = MlflowClient().get_registered_model(registry.REGISTERED_MODEL)
    assert model.tags[registry.RESERVED_TAG].startswith(f"{backed_up + 1}-{trained_since}:")
    champion = MlflowClient().get_model_version_by_alias(
        registry.REGISTERED_MODEL, registry.CHAMPION
    )
    assert int(champion.version) == backed_up  # the backup's own, kept


def test_an_empty_store_numbers_its_models_after_the_warehouses(pipeline_home, tmp_path):
    """An empty file is a whole store (a process killed before its first commit), but it was
    not created here, so it reserved nothing."""
    home = copy_home(pipeline_home[0], tmp_path / "home")
    newest = newest_version(home)
    (home / "mlflow.db").write_bytes(b"")
    assert int(register(home)) == newest + 1


def test_a_store_that_numbered_past_the_warehouse_reserves_nothing(pipeline_home, tmp_path):
    home = copy_home(pipeline_home[0], tmp_path / "home")
    newest = newest_version(home)
    assert int(register(home)) == newest + 1
    assert int(register(home)) == newest + 2


def test_a_damaged_published_warehouse_is_read_from_the_working_copy(pipeline_home, tmp_path):
    """Every step's MLflow set-up reads the versions the warehouse names: a damaged published
    copy (which the step's warehouse resource makes whole again) must not fail it."""
    home = copy_home(pipeline_home[0], tmp_path / "home")
    newest = newest_version(home)
    (home / "warehouse.duckdb").write_bytes(b"\0" * 4096)
    assert registry.warehouse_versions(Home(home)) == newest
