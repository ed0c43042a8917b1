"""CPU allocation across every deployment's kernels: each kernel is pinned to the least loaded CPUs."""

from __future__ import annotations

import os
from collections import Counter


class CpuAllocator:
    """Counts the kernels pinned to each CPU the daemon may use and hands out the least loaded ones."""

    def __init__(self, available: list[int] | None = None) -> None:
        if available is None:
            available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        self.available = available
        self.load: Counter[int] = Counter({cpu: 0 for cpu in available})
        self.held: dict[str, list[int]] = {}

    def take(self, owner: str, count: int) -> list[int]:
        """Pin ``owner`` (a kernel's pod name) to ``count`` CPUs, least loaded first (all of them when it asks for
        as many or more); empty where CPU affinity is not available."""
        self.release(owner)
        if not self.available:
            return []
        if count >= len(self.available):
            picked = list(self.available)
        else:
            picked = sorted(sorted(self.available, key=lambda cpu: (self.load[cpu], cpu))[: max(1, count)])
        self.load.update(picked)
        self.held[owner] = picked
        return picked

    def release(self, owner: str) -> None:
        """Give back the CPUs of ``owner`` (nothing happens when it holds none)."""
        self.load.subtract(self.held.pop(owner, []))

    def loads(self) -> dict[int, int]:
        """How many kernels are pinned to each CPU."""
        return {cpu: self.load[cpu] for cpu in self.available}
