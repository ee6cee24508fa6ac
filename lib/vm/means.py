"""What the host has: CPUs and physical memory, for the "within the host's means" rules."""

from __future__ import annotations

import os

import attrs


@attrs.frozen
class HostMeans:
    cpus: int
    memory: int  # bytes

    @classmethod
    def of_this_host(cls) -> HostMeans:
        # sysconf works the same on illumos and Linux.
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return cls(cpus=os.cpu_count() or 1, memory=memory)
