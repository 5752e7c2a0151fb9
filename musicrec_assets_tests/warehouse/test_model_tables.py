"""The tuning a retrain reuses: one from before the ranking model is not one."""

import pytest

from musicrec_assets.warehouse import model_tables
from musicrec_assets.warehouse.tables import connect


def test_a_tuning_from_before_the_ranking_model_is_not_reused(tmp_path):
    with connect(tmp_path / "w.duckdb") as con:
        assert not model_tables.has_current_tuning(con)
        con.execute("CREATE TABLE tuning_trials (trial INT, params VARCHAR, chosen BOOLEAN)")
        assert not model_tables.has_current_tuning(con)
        with pytest.raises(RuntimeError, match="materialize als_tuning again"):
            model_tables.chosen_params(con)
        con.execute("ALTER TABLE tuning_trials ADD COLUMN model VARCHAR")
        assert model_tables.has_current_tuning(con)
