# Every target creates .venv with the machine's python3 and installs the project when needed
# (again only when pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

export MUSICREC_HOME ?= $(CURDIR)/.musicrec
export DAGSTER_HOME ?= $(MUSICREC_HOME)/dagster

# make spark-cluster: a standalone master and this many workers (1 core each) on 127.0.0.1
SPARK_WORKERS ?= 2
SPARK_WORKER_MEMORY ?= 1g
SPARK_MASTER_PORT ?= 7077
SPARK_MASTER_WEBUI_PORT ?= 8080

.PHONY: demo test ui mlflow lint bench-ingest bench-train bench-serve bench-scale bench-spark \
	bench-cold-artists bench-fold-in bench-drop-latency bench-tune bench-cli \
	spark-cluster spark-cluster-stop

# -qq: errors only (the machine's pip settings may warn about every package it looks up)
$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -qq --upgrade pip
	$(BIN)/pip install -qq -e '.[dev,spark]'
	touch $@

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

## demo: run the whole graph on the bundled sample data and print what it made
demo: $(INSTALLED) $(DAGSTER_HOME)/dagster.yaml
	mkdir -p $(MUSICREC_HOME)/landing
	cp -rp musicrec_assets/sample_data/. $(MUSICREC_HOME)/landing/
	$(BIN)/musicrec run

## test: run the test suite in TEST_WORKERS processes (pytest-xdist)
TEST_WORKERS ?= 2
test: $(INSTALLED)
	$(BIN)/pytest -n $(TEST_WORKERS) --durations=10

## ui: the Dagster UI (webserver + daemon: sensors, schedules) on the same instance as `make demo`
ui: $(INSTALLED) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml

## mlflow: the MLflow UI on the same home's store at 127.0.0.1:5000 (one worker: a local UI needs no more)
mlflow: $(INSTALLED)
	$(BIN)/python -c "from musicrec_assets.tracking import registry; registry.configure('$(MUSICREC_HOME)')"
	@echo "musicrec's runs, headline metrics as columns: http://127.0.0.1:5000/#/experiments/1/runs?viewStateShareKey=headline&workflowType=machine_learning"
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(MUSICREC_HOME)/mlflow.db \
		--host 127.0.0.1 --port 5000 --workers 1

## spark-cluster: a standalone Spark cluster on 127.0.0.1 from pyspark's jars; prints its master URL
spark-cluster: $(INSTALLED)
	$(BIN)/python -m musicrec_assets.backends.spark.cluster start --workers $(SPARK_WORKERS) \
		--worker-memory $(SPARK_WORKER_MEMORY) --port $(SPARK_MASTER_PORT) \
		--webui-port $(SPARK_MASTER_WEBUI_PORT)

## spark-cluster-stop: stop the processes `make spark-cluster` started (by their pid files)
spark-cluster-stop: $(INSTALLED)
	$(BIN)/python -m musicrec_assets.backends.spark.cluster stop

## lint: ruff, and the import contracts of pyproject.toml (the layers)
lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

## bench-ingest: ingest a 5,000,000-row ratings file, beside plain read_json
bench-ingest: $(INSTALLED)
	$(BIN)/python benchmarks/bench_ingest.py

## bench-train: ALS fit speed, memory and quality beside baselines and implicit's ALS sweep
bench-train: $(INSTALLED)
	$(BIN)/python benchmarks/bench_train.py

## bench-tune: `musicrec run` with default settings on FilmTrust, Last.fm-2k and two generated worlds, its tables scored on a held-out part beside implicit ALS and item-kNN tuned by grid, most popular, bias (about 12 minutes)
bench-tune: $(INSTALLED)
	$(BIN)/python benchmarks/bench_tune.py

## bench-serve: top-N throughput beside implicit's batch recommend; fold-in latency
bench-serve: $(INSTALLED)
	$(BIN)/python benchmarks/bench_serve.py

## bench-cli: the reader commands' wall time on the demo home (run `make demo` first), beside a bare DuckDB query process
bench-cli: $(INSTALLED)
	$(BIN)/python benchmarks/bench_cli.py

## bench-cold-artists: Last.fm-2k artists nobody played yet, placed from their tags (tag mapping vs tag popularity, random); similar artists judged by tags
bench-cold-artists: $(INSTALLED)
	$(BIN)/python benchmarks/bench_cold_artists.py

## bench-fold-in: new listeners folded in beside the same listeners trained and most popular (FilmTrust, Last.fm-2k); drop → list under dagster dev
bench-fold-in: $(INSTALLED)
	$(BIN)/python benchmarks/bench_fold_in.py
	$(BIN)/python benchmarks/bench_fold_in.py --latency

## bench-drop-latency: where a new listener's drop spends its time under dagster dev: sensor ticks, run queued, started, list readable (about 5 minutes)
bench-drop-latency: $(INSTALLED)
	$(BIN)/python benchmarks/bench_drop_latency.py

## bench-scale: the whole graph on a Last.fm-360K-shaped set, then ALS fits by size, local vs Spark (about an hour)
bench-scale: $(INSTALLED)
	$(BIN)/python benchmarks/bench_scale.py

## bench-spark: Spark's ALS fit with the system's BLAS and with its Java fallback; then the whole graph at 1×, 2×, 4× a Last.fm-360K-shaped base on Spark and locally: the Dagster process's peak RSS by size (BENCH_SPARK_SCALE: the base as a share of 360K)
BENCH_SPARK_SCALE ?= 1.0
bench-spark: $(INSTALLED)
	$(BIN)/python benchmarks/bench_spark.py --base-scale $(BENCH_SPARK_SCALE)
