"""Issue 27 item 10: a downloaded copy of the champion's files that was cut short (or changed)
is found out when it is read, set aside and downloaded again, instead of a BadZipFile."""

import pytest
from copied_home import copy_home

from musicrec_assets.tracking import registry


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
    (folder / registry.SIZES_FILE).unlink()
    factors = folder / "factors.npz"
    whole = factors.read_bytes()
    factors.write_bytes(whole[:-100])
    registry.load_champion(home)
    assert factors.read_bytes() == whole
