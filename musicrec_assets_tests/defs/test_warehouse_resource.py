"""The warehouse resource: steps write the working copy, readers get each step's result."""

import duckdb
import pytest

from musicrec_assets.defs.resources import warehouse_resource
from musicrec_assets.home import Home


def test_each_use_is_published_for_readers_failed_ones_included(tmp_path):
    resource = warehouse_resource(Home(tmp_path))
    with resource.get_connection() as con:
        con.execute("CREATE TABLE steps AS SELECT 'first' AS step")
    with pytest.raises(RuntimeError, match="the step fails"), resource.get_connection() as con:
        con.execute("INSERT INTO steps VALUES ('committed before the failure')")
        raise RuntimeError("the step fails")
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as reader:
        assert reader.execute("SELECT step FROM steps ORDER BY step").fetchall() == [
            ("committed before the failure",),
            ("first",),
        ]
    assert sorted(p.name for p in (tmp_path / "pipeline").iterdir()) == ["warehouse.duckdb"]
