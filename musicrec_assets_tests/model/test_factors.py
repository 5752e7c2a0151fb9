"""FactorModel: ids attached by the caller, reindexing onto newer id maps, save and load."""

from dataclasses import replace

import numpy as np
import pytest

from musicrec_assets.model.factors import FactorModel, ModelPair, TrainingParams

RATING = TrainingParams(objective="rating", rank=2, regularization=0.1)


def biased_model() -> FactorModel:
    return FactorModel(
        RATING,
        user_factors=np.array([[1, 0], [0, 1]], np.float32),
        item_factors=np.array([[1, 1], [2, 0], [0, 3]], np.float32),
        global_mean=3.0,
        user_bias=np.array([0.5, -0.5], np.float32),
        item_bias=np.array([0.1, 0.2, 0.3], np.float32),
        extras={"idf": np.array([1.0, 2.0, 3.0])},
    ).with_ids(np.array(["ann", "bob"]), np.array(["a1", "a2", "a3"]))


def test_with_ids_names_rows_and_columns_and_checks_their_number():
    model = biased_model()
    assert model.user_ids.tolist() == ["ann", "bob"] and model.n_items == 3
    with pytest.raises(ValueError, match="2 user and 2 item ids"):
        model.with_ids(np.array(["ann", "bob"]), np.array(["a1", "a2"]))


def test_a_model_without_ids_cannot_be_saved_or_reindexed(tmp_path):
    unnamed = FactorModel(RATING, np.ones((2, 2), np.float32), np.ones((3, 2), np.float32))
    assert unnamed.user_ids is None
    with pytest.raises(ValueError, match="no ids"):
        unnamed.save(tmp_path / "model")
    with pytest.raises(ValueError, match="no ids"):
        unnamed.reindexed(np.array(["ann"]), np.array(["a1"]))


def test_reindexed_moves_known_rows_and_zeroes_new_ones():
    model = biased_model()
    users, items = np.array(["cy", "bob", "ann"]), np.array(["a3", "a9", "a1"])
    moved = model.reindexed(users, items)
    assert moved.user_ids.tolist() == users.tolist() and moved.item_ids.tolist() == items.tolist()
    np.testing.assert_array_equal(moved.user_factors, [[0, 0], [0, 1], [1, 0]])
    np.testing.assert_array_equal(moved.item_factors, [[0, 3], [0, 0], [1, 1]])
    np.testing.assert_allclose(moved.user_bias, [0.0, -0.5, 0.5])
    np.testing.assert_allclose(moved.item_bias, [0.3, 0.0, 0.1])
    np.testing.assert_array_equal(moved.extras["idf"], [3.0, 0.0, 1.0])
    # a known pair scores as before; an unknown artist gets what the model knows: μ + b_u
    scores = moved.user_vectors() @ moved.item_vectors().T
    original = model.user_vectors() @ model.item_vectors().T
    assert scores[2, 2] == pytest.approx(original[0, 0])
    assert scores[1, 1] == pytest.approx(3.0 - 0.5)


def test_save_and_load_round_trip(tmp_path):
    model = biased_model()
    loaded = FactorModel.load(model.save(tmp_path / "model"))
    assert loaded.params == model.params and loaded.global_mean == model.global_mean
    for name in ("user_ids", "item_ids", "user_factors", "item_factors", "user_bias", "item_bias"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(model, name))
    np.testing.assert_array_equal(loaded.extras["idf"], model.extras["idf"])


def test_a_model_pair_names_both_models_alike_and_lists_them_by_role():
    ranking = FactorModel(
        TrainingParams(objective="ranking", rank=2, regularization=1.0, confidence="rating"),
        user_factors=np.ones((2, 2), np.float32),
        item_factors=np.ones((3, 2), np.float32),
    )
    rating = replace(biased_model(), user_ids=None, item_ids=None)
    users, items = np.array(["u1", "u2"]), np.array(["x", "y", "z"])
    pair = ModelPair(ranking, rating).with_ids(users, items)
    assert list(pair.models()) == ["ranking", "rating"]
    for model in pair.models().values():
        assert model.user_ids.tolist() == ["u1", "u2"]
        assert model.item_ids.tolist() == ["x", "y", "z"]
    plays_only = ModelPair(ranking).with_ids(users, items)
    assert plays_only.rating is None and list(plays_only.models()) == ["ranking"]
    with pytest.raises(ValueError):
        ModelPair(ranking, rating).with_ids(users, items[:2])
