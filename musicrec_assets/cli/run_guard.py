"""A watcher beside the run that ``musicrec run`` executes in its own process.

A step waiting for a pool slot (``duckdb``: one writer at a time) sleeps inside Dagster's
executor, which says so only at debug level and does not look at Ctrl-C while it waits. So,
while the run waits, the watcher

* prints the run's progress (`progress.Progress`), when asked to;
* says which step waits for which pool, and which run holds the slot (again when that
  changes, and once a minute);
* retries the crash recovery now and then, so a holder killed meanwhile gives its slot back;
* on SIGINT or SIGTERM (seen through `signal.set_wakeup_fd`, whoever handles the signal),
  marks the run failed, withdraws its claims and ends the process at once: a run that only
  waits holds no slot, so none of its steps is writing anything.

While a step works, Dagster itself interrupts the step on a signal and fails the run.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import dagster as dg

from musicrec_assets.cli.preflight import is_disk_error
from musicrec_assets.cli.progress import Progress
from musicrec_assets.defs.recovery import PID_TAG, recover_abandoned_runs

POLL_SECONDS = 1.0
FIRST_NOTICE_SECONDS = 3.0
REPEAT_NOTICE_SECONDS = 60.0
RECOVERY_SECONDS = 10.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class PoolState:
    """What one run has in the pools right now."""

    holds: list[tuple[str, str]] = field(default_factory=list)  # (pool, step key)
    waits: list[tuple[str, str]] = field(default_factory=list)
    holders: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # pool: (run, step)


def pool_state(instance: dg.DagsterInstance, run_id: str) -> PoolState:
    state = PoolState()
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return state
    for pool, info in storage.get_concurrency_infos(sorted(storage.get_concurrency_keys())).items():
        for slot in info.claimed_slots:
            if slot.run_id == run_id:
                state.holds.append((pool, slot.step_key))
            else:
                state.holders.setdefault(pool, []).append((slot.run_id, slot.step_key))
        state.waits += [
            (pool, step.step_key)
            for step in info.pending_steps
            if step.run_id == run_id and step.assigned_timestamp is None
        ]
    return state


def describe_wait(instance: dg.DagsterInstance, state: PoolState, seconds: float) -> str:
    waits = []
    for pool in sorted({pool for pool, _ in state.waits}):
        steps = sorted(step for waited, step in state.waits if waited == pool)
        who = f"step {steps[0]} waits" if len(steps) == 1 else f"steps {', '.join(steps)} wait"
        holders = []
        for run_id, holder_step in state.holders.get(pool, []):
            run = instance.get_run_by_id(run_id)
            where = f"pid {run.tags[PID_TAG]}, " if run and PID_TAG in run.tags else ""
            job = run.job_name if run else "unknown job"
            holders.append(f"run {run_id} ({job}, {where}step {holder_step})")
        held_by = ", ".join(holders) or "no run now"
        waits.append(f"{who} for a slot of pool {pool}, held by {held_by}")
    return f"waiting {seconds:.0f} s: " + "; ".join(waits)


@contextlib.contextmanager
def watching(
    instance: dg.DagsterInstance, run_id: str, say=print, progress: Progress | None = None
) -> Iterator[None]:
    """Watch run ``run_id`` (executed by this process in the block) as the module says."""
    # The watcher reads Dagster's storage through SQLAlchemy while the run lazily imports
    # SQLAlchemy's ORM (MLflow's store); a module half-imported by one thread breaks the other.
    import sqlalchemy.orm  # noqa: F401

    wakeup_reader, wakeup_writer = socket.socketpair()
    wakeup_writer.setblocking(False)
    previous_wakeup = signal.set_wakeup_fd(wakeup_writer.fileno(), warn_on_full_buffer=False)
    stop = threading.Event()
    watcher = threading.Thread(
        target=_watch,
        args=(instance.get_ref(), run_id, wakeup_reader, stop, say, progress),
        name="musicrec-run-guard",
        daemon=True,
    )
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()
        signal.set_wakeup_fd(previous_wakeup)
        wakeup_reader.close()
        wakeup_writer.close()


def _watch(
    instance_ref,
    run_id: str,
    wakeup: socket.socket,
    stop: threading.Event,
    say,
    progress: Progress | None,
) -> None:
    # an instance of its own: the main thread's is busy executing the run
    with dg.DagsterInstance.from_ref(instance_ref) as instance:
        waiting_since = next_notice = next_recovery = interrupted_by = told_holders = None
        while not stop.is_set():
            if progress is not None:
                _show(progress, instance, run_id, say)
            readable, _, _ = select.select([wakeup], [], [], POLL_SECONDS)
            stops = [n for n in (wakeup.recv(64) if readable else b"") if n in STOP_SIGNALS]
            if stops:
                # kept: a signal between two steps finds no step to interrupt, so Dagster
                # would act on it only once the next step gets its slot
                interrupted_by = stops[-1]
            try:
                state = pool_state(instance, run_id)
                if not state.waits or state.holds:
                    waiting_since = None
                    continue
                if interrupted_by is not None:
                    _end_waiting_run(instance, run_id, interrupted_by, state, say)
                now = time.monotonic()
                if waiting_since is None:
                    waiting_since, next_notice = now, now + FIRST_NOTICE_SECONDS
                    next_recovery = now + RECOVERY_SECONDS
                holders_changed = told_holders is not None and state.holders != told_holders
                if now >= next_notice or holders_changed:
                    say(describe_wait(instance, state, now - waiting_since), flush=True)
                    next_notice, told_holders = now + REPEAT_NOTICE_SECONDS, state.holders
                if now >= next_recovery:
                    for line in recover_abandoned_runs(instance):
                        say(f"recovered {line}", flush=True)
                    next_recovery = now + RECOVERY_SECONDS
            except Exception as error:  # storage busy for a moment: the run goes on, so do we
                if not is_disk_error(str(error)):  # a full disk: the run's end says so, once
                    say(f"musicrec: cannot read the pools now ({error})", file=sys.stderr)
        if progress is not None:
            _show(progress, instance, run_id, say)  # the run's last lines


def _show(progress: Progress, instance: dg.DagsterInstance, run_id: str, say) -> None:
    try:
        progress.show(instance, run_id)
    except Exception as error:  # a busy event log: the next look shows what this one missed
        if not is_disk_error(str(error)):  # a full disk: the run's end says so, once
            say(f"musicrec: cannot read the run's progress now ({error})", file=sys.stderr)


def _end_waiting_run(
    instance: dg.DagsterInstance, run_id: str, signal_number: int, state: PoolState, say
) -> None:
    name = signal.Signals(signal_number).name
    pools = ", ".join(sorted({pool for pool, _ in state.waits}))
    message = f"interrupted by {name} while waiting for a slot of pool {pools}"
    run = instance.get_run_by_id(run_id)
    if run is not None and not run.is_finished:
        instance.report_run_failed(run, message)
    instance.event_log_storage.free_concurrency_slots_for_run(run_id)
    say(f"musicrec: run {run_id} {message}: marked failed", file=sys.stderr, flush=True)
    os._exit(128 + signal_number)
