"""How much of the machine the benchmark did NOT have: CPU used by other processes during a run.

The bench shares 2 cores with whatever else runs (editors, other test suites). Each run
records `other_cpu_cores`: machine-wide busy CPU minus what our servers and wrk used, averaged
over the run, so a noisy figure can be recognised as such. `wait_for_quiet` holds a run back
(bounded) until the rest of the machine is nearly idle.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterable

import psutil


def _busy_seconds() -> float:
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def _tree_seconds(root_pids: Iterable[int]) -> float:
    total = 0.0
    for pid in root_pids:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for proc in procs:
            try:
                cpu = proc.cpu_times()
                total += cpu.user + cpu.system
            except psutil.Error:
                continue
    return total


def _children_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """Start before a run, `stop()` after: returns other processes' CPU, in cores."""

    def __init__(self, our_pids: Iterable[int]):
        self.our_pids = list(our_pids)
        self.started = time.monotonic()
        self.busy = _busy_seconds()
        self.ours = _tree_seconds(self.our_pids) + _children_seconds() + time.process_time()

    def stop(self) -> float:
        elapsed = time.monotonic() - self.started
        busy = _busy_seconds() - self.busy
        ours = _tree_seconds(self.our_pids) + _children_seconds() + time.process_time() - self.ours
        return round(max(0.0, busy - ours) / elapsed, 2) if elapsed > 0 else 0.0


def wait_for_quiet(our_pids: Iterable[int], *, limit: float, max_wait: float) -> float:
    """Sample 1 s at a time until others use < `limit` cores or `max_wait` s pass; return the
    last sample (other processes' cores)."""
    deadline = time.monotonic() + max_wait
    while True:
        meter = CpuMeter(our_pids)
        time.sleep(1.0)
        other = meter.stop()
        if other < limit or time.monotonic() >= deadline:
            return other
