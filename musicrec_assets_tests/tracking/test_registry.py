"""The model registry seen from a reader: champion files downloaded once, and versions logged
before the restructure still loading."""

from pathlib import Path

import mlflow
import pandas as pd

from musicrec_assets.tracking import registry

OLD_PYFUNC_CODE = Path(__file__).with_name("data") / "pyfunc_model_before_restructure.py"


def test_champion_files_are_downloaded_once_per_version(pipeline_home):
    home, _ = pipeline_home
    registry.configure(home)
    version, folder = registry.champion_files(home)
    assert folder.parent == home / "models" and folder.name.startswith(f"{version}-")
    assert (folder / "factors.npz").exists() and (folder / "seen.npz").exists()
    stamp = (folder / "factors.npz").stat().st_mtime_ns
    assert registry.champion_files(home) == (version, folder)
    assert (folder / "factors.npz").stat().st_mtime_ns == stamp, "downloaded again"
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".download-")]
    loaded_version, recommender = registry.load_champion(home)
    assert loaded_version == version and len(recommender.model.user_ids) > 0


def test_a_version_logged_with_the_old_pyfunc_code_still_loads(pipeline_home, tmp_path):
    """Registered versions run the pyfunc file they were logged with, which imports
    ``musicrec_assets.core.service``: the old path must keep working."""
    home, _ = pipeline_home
    registry.configure(home)
    _, folder = registry.champion_files(home)
    with mlflow.start_run(run_name="logged before the restructure"):
        info = mlflow.pyfunc.log_model(
            name="old_model",
            python_model=str(OLD_PYFUNC_CODE),
            artifacts={
                "factors": str(folder / "factors.npz"),
                "factors_meta": str(folder / "factors.json"),
                "seen": str(folder / "seen.npz"),
                "artist_names": str(folder / "artist_names.parquet"),
            },
        )
    model = mlflow.pyfunc.load_model(info.model_uri)
    user = str(registry.load_champion(home)[1].model.user_ids[0])
    answer = model.predict(pd.DataFrame([{"user_id": user, "ratings": None, "n": 3}]))
    assert list(answer["rank"]) == [1, 2, 3]
