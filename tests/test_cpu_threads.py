"""genkit gives PyTorch only the cores other processes leave free, decided before PyTorch loads."""

from __future__ import annotations

import subprocess
import sys

import pytest
from locations import ROOT

from genkit.cpu_threads import apply_cpu_defaults, busy_cores, core_times, threads_for

# /proc/stat lines: user nice system idle iowait irq softirq steal guest guest_nice
STAT_BEFORE = """cpu  300 0 60 1000 20 0 4 0 0 0
cpu0 100 0 20 500 10 0 2 0 0 0
cpu1 200 0 40 500 10 0 2 0 0 0
intr 12345 0 0
ctxt 999
"""
# 10 ticks later on each core: cpu0 idle but for one tick of iowait, cpu1 busy 9 ticks (8 user, 1 steal) of 10
STAT_AFTER = """cpu  308 0 60 1009 21 0 4 1 0 0
cpu0 100 0 20 509 11 0 2 0 0 0
cpu1 208 0 40 501 10 0 2 1 0 0
intr 12399 0 0
ctxt 1200
"""


def test_core_times_count_everything_but_idle_and_iowait_as_busy():
    assert core_times(STAT_BEFORE, [0, 1]) == {0: (122, 632), 1: (242, 752)}
    assert core_times(STAT_BEFORE, [1]) == {1: (242, 752)}


def test_busy_cores_add_up_the_busy_share_of_each_core():
    before, after = core_times(STAT_BEFORE, [0, 1]), core_times(STAT_AFTER, [0, 1])
    assert busy_cores(before, after) == pytest.approx(0 / 10 + 9 / 10)


@pytest.mark.parametrize(
    "cores, busy, threads",
    [(2, 0.0, None), (2, 0.2, None), (2, 0.3, 1), (2, 0.9, 1), (2, 2.0, 1), (16, 5.0, 11), (16, 3.8, 12)],
)
def test_threads_are_the_cores_left_free_and_at_least_one(cores, busy, threads):
    assert threads_for(cores, busy) == threads


def fake_stat(*texts):
    remaining = list(texts)
    return lambda: remaining.pop(0)


def test_a_busy_core_sets_omp_num_threads_to_the_free_ones():
    environ = {}
    stat = fake_stat(STAT_BEFORE, STAT_AFTER)
    chosen = apply_cpu_defaults(environ, read_stat=stat, cpus=[0, 1], sleep=lambda seconds: None)
    assert chosen == 1 and environ == {"OMP_NUM_THREADS": "1"}


def test_idle_cores_are_left_to_pytorch():
    environ = {}
    stat = fake_stat(STAT_BEFORE, STAT_BEFORE)
    assert apply_cpu_defaults(environ, read_stat=stat, cpus=[0, 1], sleep=lambda seconds: None) is None
    assert environ == {}


@pytest.mark.parametrize("name", ["OMP_NUM_THREADS", "MKL_NUM_THREADS"])
def test_a_thread_count_the_user_set_is_never_changed_nor_the_cores_sampled(name):
    environ = {name: "2"}

    def unread():
        raise AssertionError("/proc/stat read although the user chose the threads")

    assert apply_cpu_defaults(environ, read_stat=unread, cpus=[0, 1]) is None
    assert environ == {name: "2"}


def test_the_cli_decides_the_threads_before_pytorch_loads():
    probe = (
        "import sys, genkit.cpu_threads as threads\n"
        "seen = []\n"
        "threads.apply_cpu_defaults = lambda: seen.append('torch' in sys.modules)\n"
        "import genkit.cli\n"
        "print(seen, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["[False]", "True"]
