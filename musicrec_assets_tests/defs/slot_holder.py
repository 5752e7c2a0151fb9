"""Holds a slot of the ``duckdb`` pool of a Dagster instance for as long as this process
lives: a run of one asset in the pool that sleeps. For the tests of what waits for a slot and
of crash recovery::

    python slot_holder.py DAGSTER_HOME TAGS_JSON [cli]

``cli`` adds the tags ``musicrec run`` puts on its runs (host, pid and the pid's start time);
else the run carries TAGS_JSON only, as runs launched by the daemon carry their job's tags.
"""

import json
import sys
import time

import dagster as dg

from musicrec_assets.defs.recovery import process_tags


@dg.asset(pool="duckdb")
def holds_the_slot():
    time.sleep(600)


if __name__ == "__main__":
    tags = json.loads(sys.argv[2])
    if sys.argv[3:] == ["cli"]:
        tags |= process_tags()
    with dg.DagsterInstance.from_config(sys.argv[1]) as instance:
        dg.materialize([holds_the_slot], instance=instance, tags=tags)
