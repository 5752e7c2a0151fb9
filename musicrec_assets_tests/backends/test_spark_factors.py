"""A model kept as Parquet for Spark's executors reads back as the model it was."""

import numpy as np
from scipy.sparse import random as sparse_random

from musicrec_assets.backends.spark.factors import write_factor_model
from musicrec_assets.model.baselines import fit_bias_model
from musicrec_assets.model.explicit_als import fit_explicit_als
from musicrec_assets.model.factors import TrainingParams


def ratings():
    rng = np.random.default_rng(0)
    matrix = sparse_random(40, 30, density=0.2, format="csr", random_state=rng)
    matrix.data = np.ceil(matrix.data * 10) / 2  # half stars, 0.5–5
    return matrix


def assert_reads_back(model, folder):
    back = write_factor_model(model, folder).to_factor_model()
    users, items = np.meshgrid(np.arange(40), np.arange(30), indexing="ij")
    np.testing.assert_allclose(
        back.predict(users.ravel(), items.ravel()),
        model.predict(users.ravel(), items.ravel()),
        rtol=1e-6,
    )


def test_a_factor_model_reads_back(tmp_path):
    params = TrainingParams(objective="rating", rank=4, regularization=0.1, iterations=3)
    assert_reads_back(fit_explicit_als(ratings(), params), tmp_path / "als")


def test_a_bias_model_of_rank_0_reads_back(tmp_path):
    # what a champion serves when its rating model lost to the bias model
    assert_reads_back(fit_bias_model(ratings()), tmp_path / "bias")
