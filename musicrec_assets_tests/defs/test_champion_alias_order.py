"""Issue 27 item 2's last window: the champion alias moves only once the version's metrics are
in `model_metrics`, so a run killed (SIGKILL, a real process) right after the alias moved
leaves a champion whose metrics are all in the warehouse; the tables, still the version
before's until the next run publishes, are explained by that version's model."""

import os
import signal
import subprocess
import sys
import textwrap

import duckdb
from copied_home import copy_home
from harness import REPO_ROOT
from mlflow.tracking import MlflowClient

from musicrec_assets.cli.main import main
from musicrec_assets.tracking import registry

# trains a new version of the home's model (als_model alone, the tuning kept) and dies by
# SIGKILL the moment the champion alias has moved
KILLED_AFTER_THE_ALIAS = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    import dagster as dg
    from harness import run_pipeline
    from musicrec_assets.tracking import registry

    set_alias = registry.set_alias

    def set_alias_then_die(client, alias, version):
        set_alias(client, alias, version)
        if alias == registry.CHAMPION:
            os.kill(os.getpid(), signal.SIGKILL)

    registry.set_alias = set_alias_then_die
    run_pipeline(Path({home!r}), selection=[dg.AssetKey("als_model")])
    """
)


def test_a_run_killed_right_after_the_alias_moved_leaves_the_champions_metrics(
    pipeline_home, tmp_path
):
    home = copy_home(pipeline_home[0], tmp_path / "home")
    store = f"sqlite:///{home / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    before = client.get_model_version_by_alias(registry.REGISTERED_MODEL, registry.CHAMPION)
    # no champion: the new version is promoted on passing the gate alone
    client.delete_registered_model_alias(registry.REGISTERED_MODEL, registry.CHAMPION)
    script = KILLED_AFTER_THE_ALIAS.format(
        tests=str(REPO_ROOT / "musicrec_assets_tests"), home=str(home)
    )
    process = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env={**os.environ, "MUSICREC_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == -signal.SIGKILL, process.stderr[-3000:]
    champion = client.get_model_version_by_alias(registry.REGISTERED_MODEL, registry.CHAMPION)
    assert int(champion.version) > int(before.version)
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        metrics = con.execute(
            "SELECT count(*) FROM model_metrics WHERE model_version = ?", [champion.version]
        ).fetchone()[0]
    assert metrics > 0, f"champion v{champion.version} has no rows in model_metrics"

    # the tables are the version before's until the next run: --explain explains with the
    # model that made the rows, not the champion (its copy is never fetched)
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        [(listed, user)] = con.execute(
            "SELECT any_value(model_version), any_value(user_id) FROM user_recommendations"
        ).fetchall()
    assert listed == str(before.version) != str(champion.version)
    assert main(["recommend", "--home", str(home), user, "--explain"]) == 0
    fetched = {copy.name.partition("-")[0] for copy in (home / "models").iterdir()}
    assert listed in fetched and str(champion.version) not in fetched
