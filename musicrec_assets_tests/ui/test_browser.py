"""The Dagster UI as a person meets it, in a real browser: a fresh home fed only through the
landing folder, `dagster dev`'s sensors bring it to published tables, then headless Chromium
opens the lineage and the asset pages and reads what they show.

Full-page screenshots go to the test's tmp folder (``screenshots/``); ``docs/asset-graph.png``,
``docs/als-model.png`` and ``docs/als-tuning.png`` are taken the same way on a ``make demo``
home, to be taken again when the UI changes.
Loopback only; every process started here is stopped at the end.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from harness import REPO_ROOT, SAMPLE_DATA, dagster_dev_env, free_port

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    ),
]
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
)
expect = sync_api.expect

# Playwright's own flags make it headless with a fresh profile; these keep Chromium off the
# network (none here) and off a GPU (none either)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
GROUPS = {
    "ingest": ["users", "artists", "ratings"],
    "training": ["rating_matrix", "evaluation_split", "als_tuning", "als_model"],
    "serving": [
        "user_recommendations",
        "artist_top_users",
        "similar_artists",
        "user_factors",
        "artist_factors",
    ],
}
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}
# a loaded 2-core machine: `dagster dev` starts in about 30 s, the two runs take about 2 min
RUNS_DEADLINE_SECONDS = 480
# one point of each model that beats the baselines on the bundled sample (the Spark cluster
# test's local setting), so the daemon's run publishes without a long search; the rating
# model tries two ranks, so that the tuning page has a search to show (a rating model that
# loses hands its ratings to the bias model, never the lists)
SAMPLE_SETTINGS = {
    "n_folds": 2,
    "ranks": [10, 20],
    "regularizations": [0.1],
    "bias_regularizations": [10.0],
    "ranking_ranks": [32],
    "ranking_regularizations": [30.0],
    "ranking_alphas": [3.0],
    "ranking_confidences": ["binary"],
    "neighbours": [100],
    "similarities": ["cosine"],
    "blend_weights": [0.0],
}
UI_TIMEOUT_MS = 60_000


@dataclass
class DagsterDev:
    url: str
    home: Path
    log: Path
    process: subprocess.Popen

    def graphql(self, query: str) -> dict:
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())["data"]

    def runs(self) -> list[dict]:
        query = "{ runsOrError { ... on Runs { results { jobName status tags { key value } } } } }"
        return self.graphql(query)["runsOrError"]["results"]

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def wait_for(self, predicate, what: str, deadline: float) -> None:
        while not predicate():
            assert self.process.poll() is None, (
                f"dagster dev exited while waiting for {what}:\n{self.log_tail()}"
            )
            assert time.monotonic() < deadline, (
                f"gave up waiting for {what}; dagster dev's log ends:\n{self.log_tail()}"
            )
            time.sleep(2)


def stop(process: subprocess.Popen) -> None:
    """Stop `dagster dev` and everything it started (webserver, daemon, code servers, runs)."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)
    # whatever outlived its parent (a run worker, a code server) goes too
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@pytest.fixture
def dagster_dev(tmp_path):
    """`dagster dev` on a fresh home, fed a small world through the landing folder; yields once
    the sensors' runs (ingest, then the first training, which tunes) have all succeeded."""
    home = tmp_path / "home"
    port = free_port()
    env = dagster_dev_env(home, SAMPLE_SETTINGS)
    log_path = tmp_path / "dagster-dev.log"
    command = [str(Path(sys.executable).with_name("dagster")), "dev", "-w", "workspace.yaml"]
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [*command, "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = DagsterDev(f"http://127.0.0.1:{port}", home, log_path, process)
    try:
        deadline = time.monotonic() + RUNS_DEADLINE_SECONDS

        def webserver_up() -> bool:
            try:
                return server.graphql("{ version }")["version"] is not None
            except OSError:
                return False

        server.wait_for(webserver_up, "the webserver", deadline)
        # the bundled sample (what the daemon's default settings are sized for), each file
        # copied aside, then renamed into place, as the README says to drop one
        for sample in sorted(SAMPLE_DATA.glob("*/*.json*")):
            written = tmp_path / "drop" / sample.parent.name / sample.name
            written.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(sample, written)
            dropped = home / "landing" / sample.parent.name / sample.name
            dropped.parent.mkdir(parents=True, exist_ok=True)
            written.rename(dropped)

        def trained() -> bool:
            return any(
                run["jobName"] == "retrain_job" and run["status"] in FINISHED
                for run in server.runs()
            )

        server.wait_for(trained, "the retrain sensor's run to finish", deadline)
        runs = server.runs()
        assert sorted((r["jobName"], r["status"]) for r in runs) == [
            ("ingest_job", "SUCCESS"),
            ("retrain_job", "SUCCESS"),
        ], f"{runs}\n{server.log_tail()}"
        [training] = [r for r in runs if r["jobName"] == "retrain_job"]
        assert {"key": "musicrec/first_training", "value": "true"} in training["tags"]
        yield server
    finally:
        stop(process)


@pytest.fixture
def page(tmp_path):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(UI_TIMEOUT_MS)
            # Dagster's newsletter prompt, shown once per instance on localhost, covers the page
            page.add_locator_handler(
                page.get_by_text("Join the Dagster community"),
                lambda: page.get_by_role("button", name="Skip").click(),
            )
            yield page
        finally:
            browser.close()


def shown_as(name: str) -> re.Pattern:
    """A graph node's label: the asset's name, or its middle cut short where the zoomed-out
    graph has no room for it (``user_rec…endations``)."""
    return re.compile(rf"^({re.escape(name)}|{re.escape(name[:3])}\S*…\S*{re.escape(name[-3:])})$")


def inside(inner: dict, outer: dict) -> bool:
    return (
        outer["x"] <= inner["x"]
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"]
        and outer["y"] <= inner["y"]
        and inner["y"] + inner["height"] <= outer["y"] + outer["height"]
    )


def cell_texts(rows) -> list[list[str]]:
    return [row.locator("td").all_inner_texts() for row in rows.all()]


def test_the_ui_shows_lineage_tables_metrics_and_the_gate(dagster_dev, page, tmp_path):
    shots = tmp_path / "screenshots"
    with duckdb.connect(str(dagster_dev.home / "warehouse.duckdb"), read_only=True) as con:
        columns = [row[0] for row in con.execute("DESCRIBE user_recommendations").fetchall()]
        [(n_recommendations,)] = con.execute("SELECT count(*) FROM user_recommendations").fetchall()
        [(ranking_ndcg,)] = con.execute(
            "SELECT value FROM model_metrics WHERE model = 'ranking' AND metric = 'ndcg_at_10'"
        ).fetchall()

    # the lineage: three groups, each asset drawn inside its group's box
    page.goto(f"{dagster_dev.url}/asset-groups")
    drawn = page.locator("svg foreignObject")
    expect(drawn.filter(has=page.get_by_text("serving", exact=True))).to_be_visible()
    page.keyboard.press("Alt+e")  # the graph's "Expand all groups"
    expect(drawn.filter(has=page.get_by_text("als_tuning", exact=True))).to_be_visible()
    page.reload()  # the expanded groups are in the URL now: the reload fits them all in view
    for group, assets in GROUPS.items():
        box = drawn.filter(has=page.get_by_text(group, exact=True))
        expect(box).to_have_count(1)
        for asset in assets:
            node = drawn.filter(has=page.get_by_text(shown_as(asset)))
            expect(node).to_have_count(1)
            assert inside(node.bounding_box(), box.bounding_box()), f"{asset} not in {group}"
    page.screenshot(path=shots / "asset-graph.png", full_page=True)

    # user_recommendations: its row count and its columns, as the warehouse has them
    page.goto(f"{dagster_dev.url}/assets/user_recommendations")
    row_count = page.get_by_text("Row count", exact=True).locator("..")
    expect(row_count).to_contain_text(f"{n_recommendations:,}")
    schema = page.get_by_role("table").filter(has_text="Column name")
    expect(schema.locator("tbody tr")).to_have_count(len(columns))
    assert [cells[0] for cells in cell_texts(schema.locator("tbody tr"))] == columns
    expect(page.get_by_text("the ranking model's score, which orders the list")).to_be_visible()
    page.screenshot(path=shots / "user-recommendations.png", full_page=True)

    # als_model: the model beside the baselines, the numbers the warehouse keeps
    page.goto(f"{dagster_dev.url}/assets/als_model")
    entry = metadata_entry(page, "metrics_by_model")
    metrics = entry.get_by_role("table")
    models = {"ranking", "rating", "global_mean", "bias", "most_popular", "item_knn"}
    expect(metrics.locator("tbody tr").nth(len(models) - 1)).to_be_visible()
    header = metrics.locator("thead th").all_inner_texts()
    # the two metrics that decide first, where the page's narrow table still shows them
    assert header[:3] == ["model", "ndcg_at_10", "rmse"], header
    by_model = {cells[0]: cells for cells in cell_texts(metrics.locator("tbody tr"))}
    # and the ranking model alone where the lists blend in the predicted rating
    assert set(by_model) - {"ranking_alone"} == models, by_model
    assert float(by_model["ranking"][1]) == round(ranking_ndcg, 4), by_model["ranking"]
    entry.scroll_into_view_if_needed()
    expect(metrics.locator("thead th").nth(2)).to_be_in_viewport(ratio=1)
    page.screenshot(path=shots / "als-model.png", full_page=True)

    # the gate that decides whether the recommendation tables are rebuilt
    page.goto(f"{dagster_dev.url}/assets/als_model?view=checks")
    expect(page.get_by_text("als_model_beats_baselines").first).to_be_visible()
    expect(page.get_by_text("blocking", exact=True)).to_be_visible()
    expect(page.get_by_text("Passed", exact=True)).to_be_visible()
    page.screenshot(path=shots / "als-model-checks.png", full_page=True)

    # als_tuning: the search at a glance, each table's score first, every model's settings
    # named, the plot inline and in MLflow
    page.goto(f"{dagster_dev.url}/assets/als_tuning")
    search = metadata_table(page, "search")
    expect(search.locator("tbody tr").nth(2)).to_be_visible()
    assert search.locator("thead th").all_inner_texts()[:3] == ["cv_score", "metric", "model"]
    searches = {cells[2]: cells for cells in cell_texts(search.locator("tbody tr"))}
    assert {"ranking", "rating", "item_knn"} <= set(searches), searches
    assert searches["item_knn"][3] == "K=100 cosine", searches["item_knn"]
    assert searches["rating"][4] == "2", searches["rating"]  # trials
    varied = cell_texts(metadata_table(page, "settings_searched").locator("tbody tr"))
    assert [cells[:2] + cells[3:4] for cells in varied] == [["rating", "rank", "10 – 20"]]
    top = metadata_table(page, "top_trials")
    assert top.locator("thead th").all_inner_texts()[:3] == ["cv_score", "model", "settings"]
    settings = {cells[1]: cells[2] for cells in cell_texts(top.locator("tbody tr"))}
    assert settings["item_knn"] == "K=100 cosine", settings
    assert settings["ranking"] == "rank=32 λ=30 α=3 binary", settings
    for link in ("mlflow_run", "mlflow_runs", "search_by_setting_in_mlflow"):
        expect(metadata_entry(page, link).get_by_role("link").first).to_be_visible()
    # every address into MLflow opens its classic ML view, not the GenAI one
    addresses = page.locator("a[href*='/#/experiments/']").evaluate_all(
        "links => links.map(link => link.href)"
    )
    assert len(addresses) >= 3, addresses
    assert all(a.endswith("workflowType=machine_learning") for a in addresses), addresses
    page.screenshot(path=shots / "als-tuning.png", full_page=True)
    metadata_entry(page, "search_by_setting").get_by_text("[Show Markdown]").click()
    plot = page.get_by_role("dialog").get_by_role("img", name="search_by_setting")
    expect(plot).to_be_visible()
    assert plot.evaluate("image => image.complete && image.naturalWidth") > 0  # decoded


def metadata_entry(page, key: str):
    """The row of an asset page's metadata whose key is ``key``."""
    return page.get_by_role("row").filter(has=page.get_by_text(key, exact=True))


def metadata_table(page, key: str):
    return metadata_entry(page, key).get_by_role("table")
