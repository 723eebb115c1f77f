# -*- coding: utf-8 -*-
# Copyright: flbed contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a running container's memory and CPU use from its control groups, standard library only.

The engine's stats call costs a second per container (it waits for two samples); the cgroup
files cost a read each, so a watch loop can sample every participant on every poll. A
container's cgroups vanish when it stops, so a peak has to be sampled while it runs.

Both cgroup layouts are understood: v1 (one hierarchy per controller, as on Debian's Docker
20.10 here) and v2 (one unified hierarchy).
"""

import os

CGROUP_ROOT = "/sys/fs/cgroup"

# cgroup v1 file names, and their cgroup v2 counterparts.
_V1_MEMORY = {"usage": "memory.usage_in_bytes", "peak": "memory.max_usage_in_bytes",
              "stat": "memory.stat", "events": "memory.oom_control"}
_V2_MEMORY = {"usage": "memory.current", "peak": "memory.peak", "stat": "memory.stat",
              "events": "memory.events"}


def parse_proc_cgroup(text):
    """Map each controller to its cgroup path from a /proc/<pid>/cgroup text.

    A v1 line reads "4:memory:/docker/ID"; the unified v2 line "0::/docker/ID" is keyed "".
    """
    paths = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(","):
            paths[controller] = parts[2]
    return paths


def parse_flat_keyed(text):
    """Numbers of a "key value" per line file such as memory.stat or memory.events."""
    values = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            values[parts[0]] = int(parts[1])
    return values


def _read(path):
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return None


def _read_int(path):
    text = _read(path)
    try:
        return int(text.strip()) if text else None
    except ValueError:
        return None


class ContainerCgroups:
    """The memory and CPU accounting of the process group a container's main process is in."""

    def __init__(self, pid, root=CGROUP_ROOT):
        self.paths = parse_proc_cgroup(_read("/proc/%d/cgroup" % pid) or "")
        self.root = root

    def _dir(self, controller):
        if controller in self.paths and os.path.isdir(os.path.join(self.root, controller)):
            return os.path.join(self.root, controller) + self.paths[controller]
        if "" in self.paths:
            return self.root + self.paths[""]
        return None

    def _memory_file(self, key):
        folder = self._dir("memory")
        if folder is None:
            return None
        names = _V2_MEMORY if "memory" not in self.paths else _V1_MEMORY
        return os.path.join(folder, names[key])

    def memory(self):
        """{usage_bytes, working_set_bytes, peak_bytes, oom_kills}; None for what is unknown.

        The working set leaves out inactive page cache, which the kernel frees before it kills.
        """
        usage = _read_int(self._memory_file("usage") or "")
        stat = parse_flat_keyed(_read(self._memory_file("stat") or "") or "")
        inactive = stat.get("total_inactive_file", stat.get("inactive_file", 0))
        events = parse_flat_keyed(_read(self._memory_file("events") or "") or "")
        return {
            "usage_bytes": usage,
            "working_set_bytes": None if usage is None else max(usage - inactive, 0),
            "peak_bytes": _read_int(self._memory_file("peak") or ""),
            "oom_kills": events.get("oom_kill"),
        }

    def cpu_usage_ns(self):
        """CPU time the container has used, in nanoseconds; None when unreadable."""
        folder = self._dir("cpuacct")
        if folder and "cpuacct" in self.paths:
            return _read_int(os.path.join(folder, "cpuacct.usage"))
        folder = self._dir("cpu")
        if folder is None:
            return None
        usec = parse_flat_keyed(_read(os.path.join(folder, "cpu.stat")) or "").get("usage_usec")
        return None if usec is None else usec * 1000
