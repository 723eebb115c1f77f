# -*- coding: utf-8 -*-
# Copyright: flbed contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a container's link counters from the host, standard library and iproute2 only.

``/proc/<pid>/net/dev`` lists the interfaces of the network namespace that process lives in,
so a container's byte and packet counters cost one file read and no ``nsenter``. The queueing
disciplines that shape the link (and count what they dropped) are only visible from inside
the namespace: ``nsenter -t <pid> -n tc -s -j qdisc show`` lists all of them, the download
side's ifb device included.

Seen from the container, upload is what its ``eth0`` transmits and download what it receives.
"""

import json
import subprocess

LINK_DEVICE = "eth0"
_NET_DEV_FIELDS = ("bytes", "packets", "errs", "drop")   # the first 4 of 8 in each direction


def parse_proc_net_dev(text):
    """{device: {rx_bytes, rx_packets, rx_errs, rx_drop, tx_...}} from a /proc/net/dev text."""
    devices = {}
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        numbers = rest.split()
        if not sep or len(numbers) < 16 or not numbers[0].isdigit():
            continue
        counters = {}
        for offset, direction in ((0, "rx"), (8, "tx")):
            for index, field in enumerate(_NET_DEV_FIELDS):
                counters["%s_%s" % (direction, field)] = int(numbers[offset + index])
        devices[name.strip()] = counters
    return devices


def summarize_qdiscs(qdiscs):
    """The counters of each queueing discipline from ``tc -s -j qdisc show`` output."""
    summary = []
    for qdisc in qdiscs:
        summary.append({
            "dev": qdisc.get("dev"), "kind": qdisc.get("kind"), "handle": qdisc.get("handle"),
            "parent": "root" if qdisc.get("root") else qdisc.get("parent"),
            "bytes": qdisc.get("bytes", 0), "packets": qdisc.get("packets", 0),
            "drops": qdisc.get("drops", 0), "overlimits": qdisc.get("overlimits", 0),
            "requeues": qdisc.get("requeues", 0),
        })
    return summary


def link_totals(devices, qdiscs, device=LINK_DEVICE):
    """Upload and download of the container's link, and what its shapers dropped."""
    counters = devices.get(device, {})
    return {
        "up_bytes": counters.get("tx_bytes"), "down_bytes": counters.get("rx_bytes"),
        "up_packets": counters.get("tx_packets"), "down_packets": counters.get("rx_packets"),
        "device_drops": (counters.get("tx_drop", 0) + counters.get("rx_drop", 0)
                         if counters else None),
        "qdisc_drops": sum(q["drops"] for q in qdiscs) if qdiscs is not None else None,
        "qdisc_overlimits": (sum(q["overlimits"] for q in qdiscs)
                             if qdiscs is not None else None),
    }


def read_net_dev(pid):
    """The counters of every interface in the namespace of ``pid``; None once it has gone."""
    try:
        with open("/proc/%d/net/dev" % pid, encoding="ascii") as handle:
            return parse_proc_net_dev(handle.read())
    except (OSError, UnicodeDecodeError):
        return None


def read_qdiscs(pid, timeout_s=5.0):
    """The statistics of every qdisc in the namespace of ``pid``; None when tc cannot say."""
    try:
        done = subprocess.run(["nsenter", "-t", str(pid), "-n", "tc", "-s", "-j", "qdisc",
                               "show"], capture_output=True, text=True, timeout=timeout_s,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    try:
        return summarize_qdiscs(json.loads(done.stdout or "[]"))
    except ValueError:
        return None
