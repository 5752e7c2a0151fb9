"""A standalone Spark cluster on this machine, started from pyspark's own jars (no separate
Spark download): what ``make spark-cluster`` and ``make spark-cluster-stop`` run::

    python -m musicrec_assets.backends.spark.cluster start [--workers 2] [--port 7077]
        [--webui-port 8080] [--worker-memory 1g] [--home DIR]
    python -m musicrec_assets.backends.spark.cluster stop [--home DIR]

One master and N workers of one core each, every process bound to 127.0.0.1. Their logs, pid
files and work folders are under ``$MUSICREC_HOME/spark/cluster/``::

    master.pid, worker-<n>.pid   one JVM each (spark-class execs java, so the pid is the JVM's)
    cluster.json                 the master URL and web UI of the running cluster
    logs/master.log, logs/worker-<n>.log
    work/worker-<n>/             each worker's applications: executor stdout and stderr
    local/                       the executors' scratch space (shuffle files)

``start`` returns once the master's JSON status lists the N workers ALIVE, and prints the
master URL; on a home whose cluster is running it says so and starts nothing. ``stop`` ends
exactly the processes of those pid files. Linux only: processes are told apart through /proc.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import suppress
from pathlib import Path

from musicrec_assets.home import Home

LOOPBACK = "127.0.0.1"
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
MASTER_OPTIONS = [
    # a taken port must fail the start, not move the master to the next port silently
    "-Dspark.port.maxRetries=0",
    # musicrec connects as a client; the submission server would hold port 6066 for nothing
    "-Dspark.master.rest.enabled=false",
]
STOP_GRACE_SECONDS = 15.0
POLL_SECONDS = 0.25


class ClusterError(RuntimeError):
    """Why the cluster could not start, in one message."""


class Cluster:
    """The cluster whose files are under ``folder``."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.logs = folder / "logs"
        self.state = folder / "cluster.json"

    def pid_file(self, name: str) -> Path:
        return self.folder / f"{name}.pid"

    def pid_files(self) -> list[Path]:
        """Workers first, then the master: the order to stop them in."""
        workers = sorted(self.folder.glob("worker-*.pid"))
        master = self.pid_file("master")
        return workers + ([master] if master.exists() else [])

    def running_master(self) -> dict | None:
        """What ``cluster.json`` says of the running cluster, or None when its master is gone."""
        pid = _read_pid(self.pid_file("master"))
        if pid is None or not _runs_class(pid, MASTER_CLASS) or not self.state.exists():
            return None
        return json.loads(self.state.read_text())

    def start(
        self, workers: int, port: int, webui_port: int, worker_memory: str, timeout: float
    ) -> dict:
        running = self.running_master()
        if running is not None:
            print(
                f"a Spark cluster is already running: {running['master_url']} "
                f"(web UI {running['web_ui']}); `make spark-cluster-stop` first to change it"
            )
            return running
        # what a crashed cluster left (a worker whose master died) must not outlive its files
        self.stop(quiet=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        web_ui = f"http://{LOOPBACK}:{webui_port}"
        launched: dict[str, subprocess.Popen] = {}
        try:
            launched["master"] = self._launch(
                "master",
                MASTER_CLASS,
                ["--host", LOOPBACK, "--port", str(port), "--webui-port", str(webui_port)],
            )
            # workers started before the master listens retry only every 5-15 s
            status = self._wait(web_ui, began + timeout, 0, launched)
            master_url = status["url"]
            for number in range(1, workers + 1):
                launched[f"worker-{number}"] = self._launch(
                    f"worker-{number}",
                    WORKER_CLASS,
                    [
                        "--host",
                        LOOPBACK,
                        "--cores",
                        "1",
                        "--memory",
                        worker_memory,
                        "--work-dir",
                        str(self.folder / "work" / f"worker-{number}"),
                        # any free port: a fixed one would clash with a second cluster
                        "--webui-port",
                        "0",
                        master_url,
                    ],
                )
            self._wait(web_ui, began + timeout, workers, launched)
        except BaseException:
            _end([process.pid for process in launched.values()])
            self.stop(quiet=True)
            raise
        running = {"master_url": master_url, "web_ui": web_ui}
        self.state.write_text(json.dumps(running))
        print(
            f"Spark master {master_url} with {workers} workers ALIVE after "
            f"{time.monotonic() - began:.1f} s (web UI {web_ui}; logs in {self.logs})\n"
            f"use it: musicrec run --backend spark --spark-master {master_url}"
        )
        return running

    def _launch(self, name: str, main_class: str, arguments: list[str]) -> subprocess.Popen:
        spark_home = _pyspark_home()
        environment = os.environ | {
            "SPARK_HOME": spark_home,
            "SPARK_LOCAL_IP": LOOPBACK,
            "SPARK_LOCAL_DIRS": str(self.folder / "local"),
            "SPARK_MASTER_OPTS": " ".join(
                [os.environ.get("SPARK_MASTER_OPTS", ""), *MASTER_OPTIONS]
            ).strip(),
        }
        with (self.logs / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                [str(Path(spark_home, "bin", "spark-class")), main_class, *arguments],
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # its own session: a Ctrl-C in the shell that ran `make` does not reach it
                start_new_session=True,
            )
        self.pid_file(name).write_text(f"{process.pid}\n")
        return process

    def _wait(
        self, web_ui: str, deadline: float, workers: int, launched: dict[str, subprocess.Popen]
    ) -> dict:
        """The master's JSON status once it lists ``workers`` workers ALIVE; a ClusterError
        with the log of a launched process that exited, or when the deadline passed."""
        status = None
        while True:
            for name, process in launched.items():
                if process.poll() is not None:
                    log = self.logs / f"{name}.log"
                    raise ClusterError(f"{name} exited ({process.returncode}):\n{_tail(log)}")
            try:
                with urllib.request.urlopen(f"{web_ui}/json/", timeout=2) as answer:
                    status = json.load(answer)
            except (OSError, ValueError):
                status = None  # not listening yet
            if status is not None and _alive_workers(status) >= workers:
                return status
            if time.monotonic() >= deadline:
                alive = _alive_workers(status) if status else 0
                raise ClusterError(
                    f"the cluster was not ready in time ({alive} of {workers} workers ALIVE at "
                    f"{web_ui}); see the logs in {self.logs}"
                )
            time.sleep(POLL_SECONDS)

    def stop(self, quiet: bool = False) -> None:
        """SIGTERM to each process of a pid file that still runs its Spark class, SIGKILL to
        one still there after the grace period; then the pid files go."""
        stopping = []
        for pid_file in self.pid_files():
            pid = _read_pid(pid_file)
            main_class = MASTER_CLASS if pid_file.stem == "master" else WORKER_CLASS
            # a pid file outlives a reboot, and its pid may belong to someone else by now
            if pid is not None and _runs_class(pid, main_class):
                stopping.append((pid_file.stem, pid))
        _end([pid for _, pid in stopping])
        for pid_file in self.pid_files():
            pid_file.unlink()
        self.state.unlink(missing_ok=True)
        if not quiet:
            names = ", ".join(f"{name} (pid {pid})" for name, pid in stopping)
            print(f"stopped {names}" if stopping else f"no Spark cluster running in {self.folder}")


def _end(pids: list[int]) -> None:
    """SIGTERM (a JVM's shutdown hooks then end its executors too), SIGKILL to a process
    still there after the grace period."""
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while any(map(process_running, pids)) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    for pid in filter(process_running, pids):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _pyspark_home() -> str:
    import pyspark

    return os.path.dirname(pyspark.__file__)


def _alive_workers(status: dict) -> int:
    return sum(worker["state"] == "ALIVE" for worker in status.get("workers", []))


def _read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text())
    except (OSError, ValueError):
        return None


def process_running(pid: int) -> bool:
    """A process holds ``pid`` and is no zombie (one that ended, its parent yet to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _runs_class(pid: int, main_class: str) -> bool:
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return main_class.encode() in arguments


def _tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {log})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m musicrec_assets.backends.spark.cluster",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--home", help="MUSICREC_HOME (default: $MUSICREC_HOME or .musicrec)")
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start a master and its workers on 127.0.0.1")
    start.add_argument("--workers", type=int, default=2)
    start.add_argument("--port", type=int, default=7077, help="the master's port")
    start.add_argument("--webui-port", type=int, default=8080, help="the master's web UI")
    start.add_argument("--worker-memory", default="1g", help="what each worker gives executors")
    start.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for the workers"
    )
    commands.add_parser("stop", help="stop the processes this home's pid files name")
    args = parser.parse_args(argv)

    home = Home(Path(args.home)) if args.home else Home.from_env()
    cluster = Cluster(home.spark / "cluster")
    if args.command == "stop":
        cluster.stop()
        return 0
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    from musicrec_assets.backends.spark.als import missing_spark_requirement

    missing = missing_spark_requirement()
    if missing is not None:
        print(missing, file=sys.stderr)
        return 1
    try:
        cluster.start(args.workers, args.port, args.webui_port, args.worker_memory, args.timeout)
    except ClusterError as error:
        print(f"spark-cluster: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
