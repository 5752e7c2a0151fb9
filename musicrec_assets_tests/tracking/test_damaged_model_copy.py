"""Issue 27 item 10: a downloaded copy of the champion's files that was cut short (or changed)
is found out when it is read, set aside and downloaded again, instead of a BadZipFile."""

import os
import shutil

import pytest
from copied_home import copy_home
from mlflow.tracking import MlflowClient

from musicrec_assets.tracking import copies, registry
from musicrec_assets.warehouse.tables import DamagedStore


@pytest.fixture
def home(pipeline_home, tmp_path):
    home = copy_home(pipeline_home[0], tmp_path / "home")
    registry.use_existing_store(home)
    return home


def test_a_truncated_factors_file_is_downloaded_again(home):
    version, folder = registry.champion_files(home)
    factors = folder / "factors.npz"
    whole = factors.read_bytes()
    factors.write_bytes(whole[: len(whole) // 2])
    again, recommender = registry.load_champion(home)
    assert again == version
    assert factors.read_bytes() == whole
    assert len(recommender.artist_names([])) == 0  # it loads, and answers


def test_a_copy_from_before_the_sizes_file_is_checked_by_its_archives(home):
    _, folder = registry.champion_files(home)
    (folder / copies.SIZES_FILE).unlink()
    factors = folder / "factors.npz"
    whole = factors.read_bytes()
    factors.write_bytes(whole[:-100])
    registry.load_champion(home)
    assert factors.read_bytes() == whole


def overwrite_keeping_size(path, keep_mtime: bool) -> bytes:
    """Zeros over the middle of ``path``, its size (and, with ``keep_mtime``, its mtime) as it
    was; returns what it held."""
    whole = path.read_bytes()
    before = path.stat()
    middle, span = len(whole) // 2, len(whole) // 4
    path.write_bytes(whole[:middle] + bytes(span) + whole[middle + span :])
    assert path.stat().st_size == before.st_size
    if keep_mtime:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    return whole


@pytest.mark.parametrize("keep_mtime", [False, True], ids=["written", "mtime put back"])
@pytest.mark.parametrize("name", ["factors.npz", "factors.json"])
def test_a_file_changed_without_changing_its_size_is_downloaded_again(home, name, keep_mtime):
    """Issue 27's variants: the same-size overwrite passed the size check, and the archive,
    whole when downloaded, was not read again: a BadZipFile traceback (a JSON file: a decode
    error that said nothing of the model)."""
    _, folder = registry.champion_files(home)
    whole = overwrite_keeping_size(folder / name, keep_mtime)
    registry.load_champion(home)
    assert (folder / name).read_bytes() == whole


def test_a_file_in_place_of_the_copy_is_replaced_by_the_copy(home):
    _, folder = registry.champion_files(home)
    shutil.rmtree(folder)
    folder.write_text("not a model")
    registry.load_champion(home)
    assert (folder / "factors.npz").is_file()
    assert [path.name for path in folder.parent.iterdir()] == [folder.name]


def test_a_file_in_place_of_the_models_folder_is_moved_aside(home):
    """It gave every reader a bare "[Errno 17] File exists"; the folder holds only copies."""
    _, folder = registry.champion_files(home)
    shutil.rmtree(folder.parent)
    folder.parent.write_text("mine")
    registry.load_champion(home)
    assert (folder / "factors.npz").is_file()
    [aside] = home.glob("models.not-a-folder-*")
    assert aside.read_text() == "mine"


def test_a_champion_whose_files_are_gone_is_named_to_runs_and_readers(home):
    """mlartifacts/ gone: a run's als_model failed with a bare "Error occurred while executing
    op", and readers advised `musicrec run`, which failed so."""
    shutil.rmtree(home / "mlartifacts")
    shutil.rmtree(home / "models")
    remedy = "missing or damaged .*move mlflow.db and mlartifacts/ aside to start a new store"
    with pytest.raises(DamagedStore, match=remedy):
        registry.champion(MlflowClient())  # what a run weighs its new model against
    with pytest.raises(DamagedStore, match=remedy):
        registry.load_champion(home)
