"""How many CPU threads PyTorch may use, decided when ``genkit`` starts, before PyTorch loads.

PyTorch splits each operation over its intra-op threads (OpenMP), and the threads wait for each
other at the end of every operation. Where another process keeps one of the cores busy, the thread
that shares a core with it is descheduled for whole scheduler slices while the others wait, at
every one of a model's thousands of small operations: a training step then costs many times its
time on idle cores, and more than it costs on fewer threads. So, on Linux, ``genkit`` samples how
busy the cores it may run on are (``/proc/stat``, over :data:`WINDOW_S`, while it is itself asleep)
and, when other processes keep some of them busy, sets ``OMP_NUM_THREADS`` to the cores left free
(at least one). On idle cores it changes nothing, and it never overrides a thread count set in the
environment (:data:`USER_SETTINGS`). The OpenMP wait policy is left at its default, which spins
briefly before sleeping: on idle cores the spinning is what makes the threads pay, and on busy cores
no wait policy saves a thread that has no core to itself — only fewer threads do.

The decision is made once, at start: a load that begins later is not followed.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, MutableMapping

#: variables by which a user chooses the thread count: where any is set, genkit leaves the threads alone
USER_SETTINGS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
WINDOW_S = 0.1  # long enough for 10 scheduler ticks per core at the usual 100 Hz
#: a core counts as free when other processes use at most this much of it
FREE_SHARE = 0.25
STAT = "/proc/stat"


def core_times(stat: str, cpus: Iterable[int]) -> dict[int, tuple[int, int]]:
    """``{cpu: (busy ticks, all ticks)}`` from the text of ``/proc/stat`` for the given cpus.

    Busy is everything but idle and iowait; time the hypervisor stole counts as busy, since this
    process cannot have it either.
    """
    wanted = set(cpus)
    times = {}
    for line in stat.splitlines():
        name, *fields = line.split() or [""]
        if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in wanted:
            continue
        ticks = [int(value) for value in fields[:8]]  # user nice system idle iowait irq softirq steal
        times[int(name[3:])] = (sum(ticks) - ticks[3] - ticks[4], sum(ticks))
    return times


def busy_cores(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]) -> float:
    """How many cores' worth of work other processes did between two samples of :func:`core_times`."""
    busy = 0.0
    for cpu, (busy_after, total_after) in after.items():
        busy_before, total_before = before.get(cpu, (busy_after, total_after))
        if total_after > total_before:
            busy += (busy_after - busy_before) / (total_after - total_before)
    return busy


def threads_for(cores: int, busy: float) -> int | None:
    """The thread count for ``cores`` of which ``busy`` are in use elsewhere; ``None`` where every core is free."""
    free = max(1, math.floor(cores - busy + FREE_SHARE))
    return free if free < cores else None


def apply_cpu_defaults(
    environ: MutableMapping[str, str] = os.environ,
    *,
    read_stat: Callable[[], str] | None = None,
    cpus: Iterable[int] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int | None:
    """Set ``OMP_NUM_THREADS`` in ``environ`` to the free cores when other processes keep some busy; return the
    count set, or ``None`` when nothing was changed (a user's setting, idle cores, no ``/proc/stat``)."""
    if any(name in environ for name in USER_SETTINGS):
        return None
    if read_stat is None:
        if not os.path.exists(STAT):
            return None
        read_stat = _read_proc_stat
    cpus = sorted(os.sched_getaffinity(0) if cpus is None else cpus)
    before = core_times(read_stat(), cpus)
    sleep(WINDOW_S)
    threads = threads_for(len(cpus), busy_cores(before, core_times(read_stat(), cpus)))
    if threads is not None:
        environ["OMP_NUM_THREADS"] = str(threads)
    return threads


def _read_proc_stat() -> str:
    with open(STAT) as file:
        return file.read()
