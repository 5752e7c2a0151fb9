from enum import StrEnum

import numpy as np
import pytest
from scipy.sparse import csr_matrix

from musicrec_assets.warehouse import interactions
from musicrec_assets.warehouse.tables import connect, ensure_schema


@pytest.fixture
def con(tmp_path):
    connection = connect(tmp_path / "warehouse.duckdb")
    ensure_schema(connection)
    yield connection
    connection.close()


def add_ratings(con, *rows) -> None:
    """``(user_id, artist_id, rating, plays)`` rows into ``ratings``."""
    con.executemany(
        "INSERT INTO ratings (user_id, artist_id, rating, plays, source_file, ingested_at) "
        "VALUES (?, ?, ?, ?, 'test', now())",
        [list(row) for row in rows],
    )


def test_existing_ids_keep_their_index_and_new_ones_are_appended(con):
    add_ratings(con, ("mia", "m83", 4.0, None), ("bob", "abba", 3.0, None))
    interactions.update_indexes(con, "explicit")
    assert [ids.tolist() for ids in interactions.load_ids(con)] == [["bob", "mia"], ["abba", "m83"]]

    # ids that sort before the known ones still go to the end, in id order among themselves
    add_ratings(con, ("zoe", "blur", 5.0, None), ("ann", "air", 2.0, None))
    interactions.update_indexes(con, "explicit")
    assert [ids.tolist() for ids in interactions.load_ids(con)] == [
        ["bob", "mia", "ann", "zoe"],
        ["abba", "m83", "air", "blur"],
    ]
    interactions.update_indexes(con, "explicit")
    assert len(interactions.load_ids(con)[0]) == 4


def test_only_ids_with_a_value_of_the_feedback_kind_are_indexed(con):
    add_ratings(con, ("ann", "abba", 4.0, None), ("bob", "blur", None, 12))
    interactions.update_indexes(con, "explicit")
    assert [ids.tolist() for ids in interactions.load_ids(con)] == [["ann"], ["abba"]]
    interactions.update_indexes(con, "implicit")
    assert [ids.tolist() for ids in interactions.load_ids(con)] == [
        ["ann", "bob"],
        ["abba", "blur"],
    ]


def test_the_kind_of_feedback_is_decided_once(con):
    """A home from before the kind was kept decides by its stored ratings; then a stray rating
    changes nothing, and a setting of the other kind is an error that says why."""
    add_ratings(con, ("ann", "abba", None, 3), ("bob", "abba", None, 5))
    assert interactions.resolve_feedback(con, "auto") == "implicit"
    add_ratings(con, ("bob", "blur", 4.5, None), ("zoe", "blur", 4.5, None))
    assert interactions.resolve_feedback(con, "auto") == "implicit"
    assert interactions.resolve_feedback(con, "implicit") == "implicit"
    with pytest.raises(ValueError, match="holds play counts .implicit, decided by the stored"):
        interactions.resolve_feedback(con, "explicit")
    with pytest.raises(ValueError, match="auto, explicit or implicit"):
        interactions.resolve_feedback(con, "ratings")


def test_a_setting_that_names_a_kind_decides_it(con):
    add_ratings(con, ("ann", "abba", 4.0, 3))
    assert interactions.resolve_feedback(con, "implicit") == "implicit"
    assert interactions.resolve_feedback(con, "auto") == "implicit"


def test_a_home_of_ratings_and_play_counts_alike_holds_ratings(con):
    add_ratings(con, ("ann", "abba", 4.0, 3), ("bob", "abba", None, 5), ("bob", "air", 2.0, None))
    assert interactions.resolve_feedback(con, "auto") == "explicit"


def test_resolve_feedback_of_a_setting_enum_is_a_plain_str(con):
    """Dagster serializes the result into metadata, and refuses enums it does not know."""

    class Setting(StrEnum):
        explicit = "explicit"

    resolved = interactions.resolve_feedback(con, Setting.explicit)
    assert type(resolved) is str and resolved == "explicit"


@pytest.mark.parametrize("feedback", ["explicit", "implicit"])
def test_load_matrix_follows_the_maps(con, feedback):
    rows = [
        ("mia", "m83", 4.0, 10),
        ("bob", "abba", 3.5, None),
        ("bob", "m83", None, 7),
        ("ann", "abba", 1.0, 2),
        ("zoe", "air", None, 5),  # indexed by implicit feedback only: an empty explicit row
    ]
    add_ratings(con, *rows)
    interactions.update_indexes(con, "explicit")
    interactions.update_indexes(con, "implicit")
    matrix = interactions.load_matrix(con, feedback)
    user_ids, item_ids = interactions.load_ids(con)
    assert matrix.feedback == feedback
    assert matrix.user_ids.tolist() == user_ids.tolist()
    assert matrix.item_ids.tolist() == item_ids.tolist()
    assert matrix.values.shape == (len(user_ids), len(item_ids)) == (4, 3)
    assert matrix.values.dtype == np.float32

    column = 2 if feedback == "explicit" else 3
    expected = np.zeros(matrix.values.shape, dtype=np.float32)
    for row in rows:
        if row[column] is not None:
            user = user_ids.tolist().index(row[0])
            item = item_ids.tolist().index(row[1])
            expected[user, item] = row[column]
    np.testing.assert_array_equal(matrix.values.toarray(), expected)


def test_a_saved_split_loads_back_aligned_with_the_maps(con):
    add_ratings(
        con,
        ("ann", "abba", 4.0, None),
        ("ann", "blur", 2.0, None),
        ("bob", "abba", 5.0, None),
        ("bob", "m83", 3.0, None),
        ("mia", "blur", 1.5, None),
    )
    interactions.update_indexes(con, "explicit")
    values = interactions.load_matrix(con, "explicit").values
    test_mask = csr_matrix(([1, 1], ([0, 1], [1, 2])), shape=values.shape, dtype=bool)
    test = values.multiply(test_mask).tocsr()
    train = (values - test).tocsr()
    train.eliminate_zeros()

    assert interactions.save_split(con, train, test) == values.nnz
    parts = con.execute(
        "SELECT user_id, artist_id, part FROM evaluation_split ORDER BY ALL"
    ).fetchall()
    assert parts == [
        ("ann", "abba", "train"),
        ("ann", "blur", "test"),
        ("bob", "abba", "train"),
        ("bob", "m83", "test"),
        ("mia", "blur", "train"),
    ]
    loaded_train, loaded_test = interactions.load_split(con, "explicit")
    np.testing.assert_array_equal(loaded_train.toarray(), train.toarray())
    np.testing.assert_array_equal(loaded_test.toarray(), test.toarray())
