"""MLflow: the embedded tracking store, model logging and the champion/challenger registry.

The store is a sqlite file under MUSICREC_HOME (MLflow ≥ 3.13 refuses the plain file store)
with artifacts beside it. Models are logged as MLflow "models from code"
(:mod:`musicrec_assets.serving.pyfunc_model`) with their factors as ``.npz``/JSON/Parquet
artifacts, so nothing is ever unpickled.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types.schema import ColSpec, Schema

from musicrec_assets.evaluation.promotion import Champion
from musicrec_assets.home import Home, check_mlflow_store
from musicrec_assets.model.factors import ModelPair
from musicrec_assets.model.tag_mapping import TagFactors
from musicrec_assets.serving.recommender import Recommender
from musicrec_assets.tracking import copies
from musicrec_assets.warehouse import published
from musicrec_assets.warehouse.tables import DamagedStore, WarehouseBusy, connect

EXPERIMENT = "musicrec"
REGISTERED_MODEL = "musicrec-als"
EXPERIMENT_TAGS = {
    # classic ML: MLflow 3's UI opens the runs, not its GenAI overview
    "mlflow.experimentKind": "custom_model_development",
    "mlflow.note.content": "musicrec's ALS recommender: one `tuning` run per cross-validation "
    "(its trials nested), one `training` run per model fitted, each registered as a version "
    f"of `{REGISTERED_MODEL}`; alias `champion` is the version the recommendation tables "
    "serve. Written by the Dagster assets `als_tuning` and `als_model`.",
}
CHAMPION, CHALLENGER = "champion", "challenger"
# the run tag with the fingerprint of the split its evaluation model was trained on
SPLIT_TAG = "musicrec.split"
# logged as code, not pickled: MLflow runs this file to build the model when loading it
PYFUNC_CODE = Path(__file__).parents[1] / "serving" / "pyfunc_model.py"


def tracking_uri(home: Path) -> str:
    """The MLflow tracking (and registry) URI of the store under the MUSICREC_HOME ``home``."""
    return f"sqlite:///{Home(home).mlflow_db}"


def configure(home: Path) -> str:
    """Point MLflow at ``home``'s store, creating the store and the experiment when missing;
    returns the experiment's id.

    Under an exclusive lock beside the store, whichever process comes first: MLflow creates
    and migrates its sqlite schema on first access, and two processes doing that at once break
    it (``table _alembic_tmp_tags already exists``) or leave it half-migrated for good.
    """
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    layout = Home(home)
    layout.root.mkdir(parents=True, exist_ok=True)
    with open(f"{layout.mlflow_db}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        if not layout.mlflow_db.exists():
            _create_store(layout.mlflow_db)
        check_mlflow_store(layout)
        _point_mlflow_at(home)
        experiment = mlflow.get_experiment_by_name(EXPERIMENT)
        if experiment is None:
            mlflow.create_experiment(
                EXPERIMENT,
                artifact_location=layout.mlflow_artifacts.as_uri(),
                tags=EXPERIMENT_TAGS,
            )
        else:  # a store from before the tags
            for key, value in EXPERIMENT_TAGS.items():
                if key not in experiment.tags:
                    MlflowClient().set_experiment_tag(experiment.experiment_id, key, value)
        # the active experiment: nested runs (which take no experiment id) land here too
        experiment_id = mlflow.set_experiment(EXPERIMENT).experiment_id
        # once MLflow has made its tables (an empty store file is whole, and has none yet)
        _reserve_versions(
            MlflowClient(), _newest_issued(layout.mlflow_db), warehouse_versions(layout)
        )
        return experiment_id


def _create_store(store: Path) -> None:
    """Create and migrate a store under a name of its own, then rename it to ``store``: a store
    is never seen, or left by a killed process, half-migrated. Caller holds the lock."""
    for unfinished in store.parent.glob(f"{store.name}.*.part*"):  # and its journal
        unfinished.unlink()
    # a name never used before: MLflow caches one engine per store URI for the process's life
    descriptor, building = tempfile.mkstemp(
        dir=store.parent, prefix=f"{store.name}.", suffix=".part"
    )
    os.close(descriptor)
    uri = f"sqlite:///{building}"
    MlflowClient(tracking_uri=uri, registry_uri=uri).search_experiments()
    os.replace(building, store)


def _newest_issued(store: Path) -> int:
    """The newest version number ``store`` has given the registered model, deleted versions
    included (MLflow numbers a new version after all of them; its API lists none of those)."""
    with contextlib.closing(sqlite3.connect(f"{store.as_uri()}?mode=ro", uri=True)) as db:
        (newest,) = db.execute(
            "SELECT coalesce(max(version), 0) FROM model_versions WHERE name = ?",
            [REGISTERED_MODEL],
        ).fetchone()
    return int(newest)


def _reserve_versions(client: MlflowClient, issued: int, named: int) -> None:
    """Make the store's next version number come after ``named``, the newest the home's
    warehouse names, where the store has issued only up to ``issued``: a store deleted, or
    restored from an older backup, while the tables live on. Versions ``issued + 1`` to
    ``named`` are registered and deleted at once, so no two models are ever published under
    one ``model_version``. Caller holds the store's lock."""
    if named <= issued:
        return
    reserved = (
        f"{issued + 1}-{named}: versions that the warehouse's tables name and this store "
        "never registered"
    )
    if client.search_registered_models(f"name = '{REGISTERED_MODEL}'"):
        client.set_registered_model_tag(REGISTERED_MODEL, RESERVED_TAG, reserved)
    else:
        client.create_registered_model(REGISTERED_MODEL, tags={RESERVED_TAG: reserved})
    for _ in range(named - issued):
        version = client.create_model_version(REGISTERED_MODEL, source=RESERVED_SOURCE)
        client.delete_model_version(REGISTERED_MODEL, version.version)


# the registered model's tag that says which version numbers a new store reserved, and why
RESERVED_TAG = "musicrec.reserved_versions"
RESERVED_SOURCE = "reserved://a-version-of-a-lost-store"


def warehouse_versions(home: Home) -> int:
    """The newest model version any table of the home's warehouse names (0 for none): read
    from the published copy, which no run ever locks, and else (locked, or damaged: the
    step's warehouse resource makes it whole again) from the working copy."""
    for database in (home.warehouse, published.working_copy(home.warehouse)):
        if not database.exists():
            continue
        try:
            with connect(database, read_only=True) as con:
                tables = con.execute(
                    "SELECT DISTINCT table_name FROM information_schema.columns "
                    "WHERE column_name = 'model_version' AND table_name NOT LIKE '%__staging'"
                ).fetchall()
                newest = 0
                for (table,) in tables:
                    for (version,) in con.execute(
                        f'SELECT DISTINCT model_version FROM "{table}"'
                    ).fetchall():
                        if str(version).isdigit():
                            newest = max(newest, int(version))
                return newest
        except (WarehouseBusy, DamagedStore, OSError):
            continue
    return 0


def use_existing_store(home: Path) -> None:
    """Point MLflow at ``home``'s store to read it, creating nothing (a reader may work on a
    read-only home).

    Raises
    ------
    LookupError
        When the home has no store yet.
    """
    if not Home(home).mlflow_db.exists():
        raise LookupError(
            f"no model in {Home(home).root} yet (no MLflow store): run `make demo` (or "
            "`musicrec run`) first"
        )
    check_mlflow_store(Home(home))
    _point_mlflow_at(home)


def _point_mlflow_at(home: Path) -> None:
    uri = tracking_uri(home)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)


def run_url(experiment_id: str, run_id: str) -> str:
    """Where the run shows in the MLflow UI (``make mlflow``), at ``MUSICREC_MLFLOW_UI``."""
    ui = os.environ.get("MUSICREC_MLFLOW_UI", "http://127.0.0.1:5000").rstrip("/")
    # MLflow 3's UI opens in its GenAI mode whatever the experiment's kind, unless asked
    return f"{ui}/#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"


def log_png(png: bytes, file_name: str) -> None:
    """Log PNG bytes as an artifact of the active run."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / file_name
        path.write_bytes(png)
        mlflow.log_artifact(str(path), "plots")


@dataclass(frozen=True)
class LoggedModel:
    model_uri: str  # models:/musicrec-als/<version>
    version: str


# what the pyfunc's predict takes and returns (see serving.recommender.Recommender.predict);
# `ratings` is a JSON array of {"artist_id", "rating"} or {"artist_id", "plays"} (with an
# `artist_id`: {"user_id", "rating"} or {"user_id", "plays"}, known users' of a new artist)
SIGNATURE = ModelSignature(
    inputs=Schema(
        [
            ColSpec("string", "user_id", required=False),
            ColSpec("string", "ratings", required=False),
            ColSpec("string", "artist_id", required=False),
            ColSpec("long", "n", required=False),
        ]
    ),
    outputs=Schema(
        [
            ColSpec("long", "request"),
            ColSpec("string", "user_id", required=False),
            ColSpec("integer", "rank"),
            ColSpec("string", "artist_id"),
            ColSpec("string", "artist_name", required=False),
            ColSpec("double", "score"),
            ColSpec("double", "predicted_rating", required=False),
        ]
    ),
)


def _input_example(model: ModelPair) -> pd.DataFrame:
    """A known listener and a new one who rated one artist, each asking for 3 artists."""
    ranking = model.ranking
    value = "rating" if model.feedback == "explicit" else "plays"
    new_listener = json.dumps([{"artist_id": str(ranking.item_ids[0]), value: 5}])
    return pd.DataFrame(
        [
            {"user_id": str(ranking.user_ids[0]), "ratings": None, "n": 3},
            {"user_id": None, "ratings": new_listener, "n": 3},
        ]
    )


def log_model(
    serving_model: ModelPair,
    evaluation_model: ModelPair,
    seen: Path,
    artist_names: pd.DataFrame,
    tag_factors: tuple[np.ndarray, TagFactors] | None = None,
) -> LoggedModel:
    """Log the serving models (and the train-part models for later re-scoring) in the active
    run, and register them as one new version of ``musicrec-als``.

    The ranking model is ``factors.npz``/``.json``, the name a version holding one model used
    (the pyfunc code of such versions loads it), the rating model ``rating_factors.*``.
    ``seen`` is the CSR ``seen.npz`` of every interaction, which serving leaves out of a known
    user's lists (``warehouse.interactions.write_seen_npz`` streams it from the warehouse).
    ``tag_factors`` (ids and :class:`TagFactors`: the artists known only by their tags,
    placed in these models' spaces, or the gate's reason not to) go with them as
    ``tag_factors.*``, so the version serves the artists it placed wherever it is loaded.
    """
    if seen.name != "seen.npz":
        raise ValueError(f"the interactions file must be named seen.npz, not {seen.name}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        factors = serving_model.save(folder, "factors")
        evaluation_files = evaluation_model.save(folder, "evaluation_factors")
        artist_names.to_parquet(folder / "artist_names.parquet", index=False)
        if tag_factors is not None:
            factors += tag_factors[1].save(folder, tag_factors[0])
        artifacts = {
            # the single model's old keys, kept for the ranking model
            "factors": str(folder / "factors.npz"),
            "factors_meta": str(folder / "factors.json"),
            **{path.name: str(path) for path in factors if path.stem != "factors"},
            "seen": str(seen),
            "artist_names": str(folder / "artist_names.parquet"),
        }
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(PYFUNC_CODE),
            artifacts=artifacts,
            registered_model_name=REGISTERED_MODEL,
            signature=SIGNATURE,
            input_example=_input_example(serving_model),
            pip_requirements=[f"mlflow=={mlflow.__version__}", "numpy", "pandas", "scipy"],
        )
        for path in evaluation_files:
            mlflow.log_artifact(str(path), "evaluation_model")
    version = str(info.registered_model_version)
    return LoggedModel(model_uri=f"models:/{REGISTERED_MODEL}/{version}", version=version)


def champion_files(home: Path, version: str | None = None) -> tuple[str, Path]:
    """(version, folder) of the champion's files, or of the registered ``version``'s (the one
    a table's rows name), which
    :meth:`~musicrec_assets.serving.recommender.Recommender.from_folder` loads.

    A registered version never changes, so each is downloaded once, into
    ``<home>/models/<version>-<run id>`` (the run id tells a version of a recreated store
    apart), and every later reader uses that copy; copies of older versions are removed once
    a newer one is in place.

    Raises
    ------
    LookupError
        When there is no champion yet (or no ``version``), or its files cannot be fetched.
    """
    asked = version
    try:
        if asked is None:
            version = MlflowClient().get_model_version_by_alias(REGISTERED_MODEL, CHAMPION)
        else:
            version = MlflowClient().get_model_version(REGISTERED_MODEL, asked)
    except MlflowException as error:
        if asked is not None:
            raise LookupError(f"model version {asked} is not in the MLflow store") from error
        raise LookupError("no champion model yet: run `make demo` first") from error
    models = Home(home).models
    folder = copies.folder_of(home, str(version.version), version.run_id)
    if folder.exists() and copies.damaged(folder):
        # cut short or changed since it was downloaded: set aside, and downloaded again
        copies.discard(folder)
    elif folder.exists() and not copies.recorded_files(folder):
        with contextlib.suppress(OSError):  # a copy from before the sizes file, found whole
            copies.write_sizes(folder)
    if not folder.exists():
        if models.exists() and not models.is_dir():
            # it holds nothing but copies, downloaded again: whatever stands there is kept
            os.replace(models, models.with_name(f"{models.name}.not-a-folder-{os.getpid()}"))
        models.mkdir(parents=True, exist_ok=True)
        # downloaded beside it and renamed, so no reader ever sees half a model
        with tempfile.TemporaryDirectory(dir=models, prefix=".download-") as tmp:
            try:
                local = mlflow.artifacts.download_artifacts(
                    artifact_uri=f"models:/{REGISTERED_MODEL}/{version.version}", dst_path=tmp
                )
            except MlflowException as error:
                raise LookupError(
                    f"cannot fetch champion v{version.version}'s files: {error}"
                ) from error
            downloaded = Path(local) / "artifacts"
            if why := copies.damaged(downloaded, written=False):
                raise lost_champion_files(version.version, why, str(Home(home).mlflow_artifacts))
            copies.write_sizes(downloaded)
            try:
                os.rename(downloaded, folder)
            except OSError:
                if not folder.exists():  # else another reader was faster: use its copy
                    raise
        if asked is None:
            copies.remove_older(models, int(version.version))
    return str(version.version), folder


def load_champion(home: Path, version: str | None = None) -> tuple[str, Recommender]:
    """The champion's version (or ``version``) and a :class:`Recommender` over it (see
    :func:`champion_files`). A copy that does not load (changed with its size and mtime put
    back) is downloaded again, once.

    Raises
    ------
    DamagedStore
        When the copy downloaded again does not load either: the MLflow store's files are.
    """
    asked = version
    version, folder = champion_files(home, asked)
    try:
        return version, Recommender.from_folder(folder)
    except copies.UNREADABLE:
        copies.discard(folder)
    version, folder = champion_files(home, asked)
    try:
        return version, Recommender.from_folder(folder)
    except copies.UNREADABLE as error:
        raise lost_champion_files(
            version, f"{type(error).__name__}: {error}", str(Home(home).mlflow_artifacts)
        ) from error


def champion(client: MlflowClient) -> Champion | None:
    """The current champion, or None without one.

    Raises
    ------
    DamagedStore
        When its files in the MLflow store are gone or do not load.
    """
    try:
        version = client.get_model_version_by_alias(REGISTERED_MODEL, CHAMPION)
    except MlflowException:
        return None
    run = client.get_run(version.run_id)
    split = run.data.tags.get(SPLIT_TAG)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = mlflow.artifacts.download_artifacts(
                run_id=version.run_id, artifact_path="evaluation_model", dst_path=tmp
            )
            model = ModelPair.load(folder, "evaluation_factors")
    except (*copies.UNREADABLE, MlflowException) as error:
        raise lost_champion_files(
            version.version, f"{type(error).__name__}: {error}", run.info.artifact_uri
        ) from error
    return Champion(str(version.version), model, split)


def lost_champion_files(version: str, why: str, where: str) -> DamagedStore:
    """The error for a champion whose files in the MLflow store (``where``, under
    ``mlartifacts/``) are gone or damaged: a run cannot weigh a new model against it, nor a
    reader load it."""
    return DamagedStore(
        f"champion v{version}'s files in the MLflow store are missing or damaged "
        f"({why.strip().splitlines()[0]}, under {where}): restore mlartifacts/ from a backup, "
        "or move mlflow.db and mlartifacts/ aside to start a new store (the next `musicrec "
        "run` trains a new champion)"
    )


def set_alias(client: MlflowClient, alias: str, version: str) -> None:
    """Point ``alias`` at ``version``; the run of the version that loses it no longer says it
    holds it (its ``musicrec.alias`` tag becomes ``former <alias>``)."""
    try:
        previous = client.get_model_version_by_alias(REGISTERED_MODEL, alias)
    except MlflowException:
        previous = None
    client.set_registered_model_alias(REGISTERED_MODEL, alias, version)
    if previous is not None and previous.version != version:
        # a courtesy to whoever browses the old run: never worth failing the training for
        with contextlib.suppress(MlflowException):
            client.set_tag(previous.run_id, "musicrec.alias", f"former {alias}")


def describe_version(version: str, description: str, tags: dict[str, str]) -> None:
    """A registered version's description and tags, as the MLflow UI's model page shows them."""
    client = MlflowClient()
    client.update_model_version(REGISTERED_MODEL, version, description=description)
    for key, value in tags.items():
        client.set_model_version_tag(REGISTERED_MODEL, version, key, value)
