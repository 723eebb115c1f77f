"""How fast each host trains the testbed's model, and the CPU quota that gives a throughput.

``flbed calibrate`` runs the image's reference workload (training steps of the configured model,
``docker/calibrate.py``) on each host at several CPU quotas and at the host's full speed. The
record of a host keeps every measured point. A profile that states its compute as a
throughput (training steps per second of that workload) gets, on each host, the quota at
which that host's measured curve reaches the throughput: the points are joined by straight
lines from (0 CPUs, 0 steps/s), since a quota is a share of time and throughput grows with it
until the workload runs out of threads to use.

A record belongs to one host and one workload: the config sections that decide what a
training step computes. Records live on the controller under ``<runs root>/calibration/``.
"""

import hashlib
import json
import os
import re
import time

RECORD_DIR = "calibration"
# Quotas measured by default, in host cores; the host's full speed is always measured too.
DEFAULT_QUOTAS = (0.1, 0.25, 0.5, 1.0)
DEFAULT_MEASURE_S = 3.0
# The FederatedScope config sections that decide the work of one training step.
WORKLOAD_SECTIONS = ("backend", "data", "dataloader", "model", "criterion", "train")
MIN_QUOTA = 0.01
# A measurement whose workload got less than this share of its quota ran on a busy host.
BUSY_SHARE = 0.8


def workload(fs_config):
    """The part of a testbed's FederatedScope config that a training step depends on."""
    return {key: fs_config[key] for key in WORKLOAD_SECTIONS if key in fs_config}


def workload_key(fs_config):
    text = json.dumps(workload(fs_config), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def record_path(runs_root, host, key):
    safe_host = re.sub(r"[^A-Za-z0-9_.-]", "_", host)
    return os.path.join(runs_root, RECORD_DIR, safe_host, f"{key}.json")


def curve(points, host_cpus):
    """(cpus, steps/s) pairs from the origin, in rising quota; the full-speed point (cpus 0,
    no quota) stands at the host's core count. Throughput never falls along the curve: a
    measurement at a higher quota that came out lower is noise, not the host's speed."""
    pairs = [(float(p["cpus"]) or float(host_cpus), float(p["steps_per_s"])) for p in points]
    pairs.sort()
    joined, best = [(0.0, 0.0)], 0.0
    for cpus, rate in pairs:
        best = max(best, rate)
        if cpus > joined[-1][0]:
            joined.append((cpus, best))
    return joined


def make_record(host, key, fs_config, image, measured, measured_at=None):
    """The record ``flbed calibrate`` keeps for one host, from the module's measurement."""
    host_cpus = measured["host_cpus"]
    points = measured["points"]
    by_quota = {float(p["cpus"]): float(p["steps_per_s"]) for p in points}
    one_core = by_quota.get(1.0)
    return {
        "host": host,
        "workload_key": key,
        "workload": workload(fs_config),
        "reference": measured.get("warm", {}),
        "image": image,
        "measured_at": measured_at or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host_cpus": host_cpus,
        "points": points,
        "steps_per_s_one_cpu": one_core,
        "steps_per_s_full_speed": by_quota.get(0.0),
    }


def starved_points(record, share=BUSY_SHARE):
    """Measurements at a quota that the workload did not get: other work held the cores,
    so the speed measured there is the host's load, not its quota's."""
    return [p for p in record["points"]
            if p["cpus"] and p.get("cpus_used") is not None
            and p["cpus_used"] < share * p["cpus"]]


def load_record(runs_root, host, key):
    """The host's record for this workload, or None when it was never calibrated."""
    try:
        with open(record_path(runs_root, host, key), encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None


def write_record(runs_root, record):
    path = record_path(runs_root, record["host"], record["workload_key"])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=2)
    os.replace(path + ".tmp", path)
    return path


def quota_for(throughput_steps_per_s, record):
    """The quota (host cores) at which the host reaches the throughput; ValueError when even
    its full speed is too slow."""
    points = curve(record["points"], record["host_cpus"])
    top_cpus, top_rate = points[-1]
    if throughput_steps_per_s > top_rate:
        raise ValueError(f"host {record['host']!r} trains at most {top_rate:g} steps/s "
                         f"with all its {top_cpus:g} cores")
    for (low_cpus, low_rate), (high_cpus, high_rate) in zip(points, points[1:]):
        if throughput_steps_per_s <= high_rate:
            share = (throughput_steps_per_s - low_rate) / (high_rate - low_rate)
            return max(MIN_QUOTA, round(low_cpus + share * (high_cpus - low_cpus), 2))
    return top_cpus
