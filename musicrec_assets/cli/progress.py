"""What ``musicrec run`` prints while the run goes, read from the run's event log: a line when
each step starts and ends (step i of N, time since the run began) and the assets' own messages
(each file ingested, each tuning trial). Dagster's own log lines are left to ``--verbose``."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from collections.abc import Iterator

import dagster as dg

_FINISHED = {
    dg.DagsterEventType.STEP_SUCCESS: "done",
    dg.DagsterEventType.STEP_FAILURE: "FAILED",
    dg.DagsterEventType.STEP_SKIPPED: "skipped",
}


class Progress:
    """Lines for the events of one run, as they are logged; :meth:`show` prints the new ones."""

    def __init__(self, n_steps: int, say=print, labels: dict[str, str] | None = None):
        """``labels``: what to call a step other than by its key (:func:`step_labels`)."""
        self.n_steps = n_steps
        self.say = say
        self.labels = labels or {}
        self._cursor: str | None = None
        self._run_started: float | None = None
        self._step_numbers: dict[str, int] = {}
        self._step_started: dict[str, float] = {}

    def show(self, instance: dg.DagsterInstance, run_id: str) -> None:
        """Print what the run logged since the last call."""
        while True:
            page = instance.get_records_for_run(run_id, cursor=self._cursor, limit=1000)
            self._cursor = page.cursor
            for record in page.records:
                line = self.describe(record.event_log_entry)
                if line:
                    self.say(line, flush=True)
            if not page.has_more:
                return

    def describe(self, entry: dg.EventLogEntry) -> str | None:
        if self._run_started is None:
            self._run_started = entry.timestamp
        elapsed = _clock(entry.timestamp - self._run_started)
        event = entry.dagster_event
        if event is None:  # a message of one of our assets
            if entry.level < logging.INFO or not entry.step_key:
                return None
            return f"{elapsed}       {entry.step_key}: {entry.user_message}"
        step = self.labels.get(entry.step_key, entry.step_key)
        if event.event_type == dg.DagsterEventType.STEP_START:
            number = self._step_numbers.setdefault(step, len(self._step_numbers) + 1)
            self._step_started[step] = entry.timestamp
            return f"{elapsed} [{number}/{self.n_steps}] {step}"
        if event.event_type in _FINISHED:
            number = self._step_numbers.setdefault(step, len(self._step_numbers) + 1)
            line = f"{elapsed} [{number}/{self.n_steps}] {step} {_FINISHED[event.event_type]}"
            if step in self._step_started:
                line += f" in {entry.timestamp - self._step_started[step]:.1f} s"
            if event.event_type == dg.DagsterEventType.STEP_FAILURE:
                error = event.step_failure_data.error
                message = error.message.strip().splitlines()[0] if error else "no error given"
                line += f": {message} (`musicrec run --verbose` shows the whole trace)"
            return line
        if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            check = event.event_specific_data
            if not check.passed:
                severity = check.severity.value if check.severity else "ERROR"
                return f"{elapsed}       check {check.check_name} did not pass ({severity})"
        return None


class _OwnLinesOnly(io.TextIOBase):
    """A stand-in for stderr that passes on our own lines (``musicrec: …``) and counts the
    rest: what libraries write there whatever their log level (MLflow's "Successfully
    registered model", "Created version"; warnings)."""

    def __init__(self, stream):
        self.stream = stream
        self.hidden = 0
        self._partial = ""

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            if line.startswith("musicrec"):
                self.stream.write(line + "\n")
                self.stream.flush()
            elif line.strip():
                self.hidden += 1
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


@contextlib.contextmanager
def libraries_quiet(say=print) -> Iterator[None]:
    """Keep the libraries' lines out of the progress while the block runs, and say how many
    there were (``--verbose`` shows them)."""
    own_lines_only = _OwnLinesOnly(sys.stderr)
    with contextlib.redirect_stderr(own_lines_only):
        yield
    if own_lines_only.hidden:
        say(
            f"({own_lines_only.hidden} lines of the libraries' own messages not shown: "
            "`musicrec run --verbose` shows them)"
        )


def step_labels(job: dg.JobDefinition) -> dict[str, str]:
    """Each asset check's step by its check's name: Dagster keys the step
    ``<asset>_<check>``, and our checks' names start with their asset's already."""
    return {
        f"{key.asset_key.to_python_identifier()}_{key.name}": f"check {key.name}"
        for key in job.asset_layer.asset_graph.asset_check_keys
    }


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes:3d}:{seconds:02d}"
