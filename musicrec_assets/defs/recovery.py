"""Crash recovery: a run whose processes are gone is marked failed and gives back its slots.

A run killed with SIGKILL (or by a power cut) never reports its own end: it stays ``STARTED``
in the Dagster instance and keeps its ``duckdb`` pool slot, so every later writer would wait
for it forever. So each run says which processes execute it:

* ``musicrec run`` tags its run with its host, pid and the pid's start time (`process_tags`);
* runs of our jobs (sensors, the schedule, the UI) carry the host as a job tag (`HOST_TAG`),
  and Dagster stamps every event with the pid of the process that logged it (the run worker,
  each step worker).

A run is *abandoned* when it was started on this host and every one of its processes is gone;
a pid now held by another process counts as gone when its start time says so. A run of another
host, or one whose processes cannot be told (a run without our tags), is never touched, so a
live run's slot is never freed: Dagster's own run monitoring (``run_monitoring`` in
``dagster.yaml``) looks after those.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

HOST_TAG = "musicrec/host"
PID_TAG = "musicrec/pid"
# the pid's start time in clock ticks since boot, from /proc (absent where there is no /proc)
PID_STARTED_TAG = "musicrec/pid_started"

NOT_FINISHED = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
# events that only the processes executing a run log (its worker, its step workers); engine
# events are left out, as the daemon, code server and webserver log some of those too
_PROCESS_EVENTS = {
    dg.DagsterEventType.RUN_START,
    dg.DagsterEventType.STEP_WORKER_STARTED,
    dg.DagsterEventType.STEP_START,
}
# Dagster's own default: a run that ended may still have step processes finishing for a moment
DEFAULT_SLOT_GRACE_SECONDS = 30


def this_host() -> str:
    return socket.gethostname()


def host_tags() -> dict[str, str]:
    return {HOST_TAG: this_host()}


def process_tags() -> dict[str, str]:
    """Tags naming this process, for a run it executes itself (``execute_in_process``)."""
    tags = {**host_tags(), PID_TAG: str(os.getpid())}
    started = start_ticks(os.getpid())
    if started is not None:
        tags[PID_STARTED_TAG] = started
    return tags


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name, or None without one."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may itself hold spaces and parentheses
    return text[text.rindex(")") + 2 :].split()


def start_ticks(pid: int) -> str | None:
    stat = _proc_stat(pid)
    return stat[19] if stat else None  # field 22, starttime


def process_alive(pid: int, started: str | None = None) -> bool:
    """Whether ``pid`` (started at ``started`` ticks, when known) still runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by another user
    stat = _proc_stat(pid)
    if stat is None:
        return True  # no /proc to ask further (or it ended just now): assume it lives
    if stat[0] in ("Z", "X"):
        return False  # killed, only waiting for its parent to reap it
    return started is None or stat[19] == started


def _processes(instance: dg.DagsterInstance, run: dg.DagsterRun) -> list[tuple[int, str | None]]:
    if PID_TAG in run.tags:
        return [(int(run.tags[PID_TAG]), run.tags.get(PID_STARTED_TAG))]
    entries = instance.all_logs(run.run_id, of_type=_PROCESS_EVENTS)
    pids = {entry.dagster_event.pid for entry in entries if entry.dagster_event}
    return [(pid, None) for pid in sorted(pid for pid in pids if pid)]


def gone_processes(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str | None:
    """How the processes of an abandoned run are described ("pid 12 on host h"), or None when
    the run may still be alive or cannot be judged from here."""
    if run.tags.get(HOST_TAG) != this_host():
        return None
    processes = _processes(instance, run)
    if not processes or any(process_alive(pid, started) for pid, started in processes):
        return None
    pids = ", ".join(str(pid) for pid, _ in processes)
    return f"pid {pids} on host {this_host()}"


def recover_abandoned_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed every run of this host whose processes are all gone, free the pool slots it
    held, and free the slots still held by runs that ended some time ago (a run marked failed
    from outside, e.g. by the code server when its worker died). One line per run recovered."""
    recovered = []
    with _one_recovery_at_a_time(instance):
        unfinished = instance.get_run_records(
            dg.RunsFilter(statuses=NOT_FINISHED, tags=host_tags())
        )
        for record in unfinished:
            run = record.dagster_run
            gone = gone_processes(instance, run)
            if gone is None:
                continue
            reason = (
                f"abandoned: its process ({gone}) is gone, so it can never finish; marked "
                "failed and its pool slots freed by musicrec's crash recovery"
            )
            instance.report_run_failed(run, reason)
            _free_slots(instance, run.run_id)
            recovered.append(f"run {run.run_id} ({run.job_name}) {reason}")
        return recovered + _free_slots_of_ended_runs(instance)


@contextlib.contextmanager
def _one_recovery_at_a_time(instance: dg.DagsterInstance) -> Iterator[None]:
    """Runs that start together recover together: one at a time (a lock in the instance's
    folder, for this host's processes), each dead run is failed once."""
    with (Path(instance.root_directory) / "musicrec-recovery.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _free_slots(instance: dg.DagsterInstance, run_id: str) -> None:
    if instance.event_log_storage.supports_global_concurrency_limits:
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)


def slot_holders(instance: dg.DagsterInstance) -> dict[str, list[tuple[str, str]]]:
    """Pool name -> (run id, step key) of every slot claimed now."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return {}
    infos = storage.get_concurrency_infos(sorted(storage.get_concurrency_keys()))
    return {
        pool: [(slot.run_id, slot.step_key) for slot in info.claimed_slots]
        for pool, info in infos.items()
    }


def _free_slots_of_ended_runs(instance: dg.DagsterInstance) -> list[str]:
    holders = {run_id for slots in slot_holders(instance).values() for run_id, _ in slots}
    if not holders:
        return []
    grace = (instance.run_monitoring_settings or {}).get(
        "free_slots_after_run_end_seconds", DEFAULT_SLOT_GRACE_SECONDS
    )
    freed = []
    for record in instance.get_run_records(
        dg.RunsFilter(run_ids=sorted(holders), statuses=FINISHED)
    ):
        if record.end_time is not None and record.end_time + grace < time.time():
            _free_slots(instance, record.dagster_run.run_id)
            freed.append(
                f"run {record.dagster_run.run_id} ({record.dagster_run.job_name}) ended "
                f"{record.dagster_run.status.value} but still held pool slots: freed"
            )
    return freed
