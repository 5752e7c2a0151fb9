"""How many cores this process may use: the worker threads of the numpy kernels that release
the GIL (the rating model's half-steps, the top-N blocks)."""

import os


def available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
