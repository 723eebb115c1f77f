"""Read a run directory into tables a researcher can read, plot and compare.

Everything here works on what a run brought back and tolerates what is missing: a run that
failed still yields the rounds it finished, and each gap is named in ``RunReport.missing``.

Times are wall-clock seconds since the server logged ``Starting training (Round #0)``, read
from the timestamps of FederatedScope's ``exp_print.log`` files. Participants on one host share
its clock; across hosts the times are only as good as the hosts' clock synchronisation.
"""

import csv
import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from datetime import datetime

from . import __version__, fsconfig, results
from .errors import InputError

_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
_TRAINING_STARTS = "Starting training (Round #0)"
_TARGET = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(<=|>=)\s*([-+]?[\d.]+(?:e[-+]?\d+)?)\s*$",
                     re.IGNORECASE)
TARGET_RULE = "write it as METRIC<=VALUE or METRIC>=VALUE, e.g. test_loss<=0.5"


@dataclass
class RunReport:
    run_dir: str
    summary: dict
    plan: dict
    rounds: list = field(default_factory=list)        # {round, time_s, metrics}
    updates: dict = field(default_factory=dict)       # client name -> {round: time_s}
    participants: list = field(default_factory=list)  # one dict per participant
    missing: list = field(default_factory=list)       # what the run did not bring back
    training_start_s: float = None                    # exp_print.log clock, see stamp_seconds

    @property
    def metric_names(self):
        return sorted({name for entry in self.rounds for name in entry["metrics"]})


# ---------------------------------------------------------------- reading files

def _load_json(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def stamp_seconds(line):
    """Unix-like seconds of an exp_print.log line's timestamp, or None for other lines.

    The timestamp carries no zone; only differences between lines of one clock are used.
    """
    found = _STAMP.match(line)
    if not found:
        return None
    return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _stamped_records(path):
    """(seconds, record) for every log line that carries a result dict, in file order."""
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            seconds = stamp_seconds(line)
            if seconds is None or "INFO: {" not in line:
                continue
            record = results.parse_record(line.split("INFO: ", 1)[1])
            if record is not None:
                yield seconds, record


def training_start(server_log):
    """Seconds at which the server started round 0, or None."""
    if not os.path.exists(server_log):
        return None
    with open(server_log, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if _TRAINING_STARTS in line:
                return stamp_seconds(line)
    return None


def server_round_times(server_log):
    """{round: seconds} at which the server logged each round's evaluated results."""
    times = {}
    for seconds, record in _stamped_records(server_log):
        if record.get("Role") == results.SERVER_ROLE and isinstance(record.get("Round"), int):
            times.setdefault(record["Round"], seconds)
    return times


def client_update_times(client_log):
    """{round: seconds} at which a client finished its local training of each round.

    FederatedScope's server logs nothing when a model update arrives, so the client's own
    training-result line stands for the moment it sent its update: it is logged right after
    local training, just before the update goes out on the wire.
    """
    times = {}
    for seconds, record in _stamped_records(client_log):
        raw = record.get("Results_raw") or {}
        if str(record.get("Role", "")).startswith("Client #") and \
                isinstance(record.get("Round"), int) and any(k.startswith("train_") for k in raw):
            times.setdefault(record["Round"], seconds)
    return times


def read_system_metrics(path):
    """The last line of a system_metrics.log (the server writes two), or None."""
    if not os.path.exists(path):
        return None
    last = None
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                last = json.loads(line)
            except ValueError:
                continue
    return last


def read_resources(path):
    """Rows of a resources.csv as dicts of floats (None for an empty cell); [] when absent."""
    if not os.path.exists(path):
        return []
    rows = []
    with open(path, encoding="ascii", errors="replace") as handle:
        for row in csv.DictReader(handle):
            rows.append({key: (float(value) if value not in ("", None) else None)
                         for key, value in row.items() if key})
    return rows


# ---------------------------------------------------------------- the report of one run

def is_run_dir(path):
    return os.path.isdir(path) and any(
        os.path.exists(os.path.join(path, name)) for name in ("summary.json", "plan.json"))


def _participant_names(plan, summary, run_dir):
    for source in (summary.get("participants"), plan.get("participants")):
        if source:
            return [dict(p) for p in source]
    folder = os.path.join(run_dir, "participants")
    names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    return [{"name": name, "role": "server" if name == "server" else "client"}
            for name in names if not name.startswith(".")]


def load_run(run_dir):
    """Everything a run directory says; InputError when it is not a run directory."""
    if not is_run_dir(run_dir):
        raise InputError(f"RUN_DIR: {run_dir!r} is not a run directory; give a "
                         "runs/<testbed>/<run_id>/ directory with a summary.json or plan.json")
    summary = _load_json(os.path.join(run_dir, "summary.json")) or {}
    plan = _load_json(os.path.join(run_dir, "plan.json")) or {}
    report = RunReport(os.path.abspath(run_dir), summary, plan)
    if not summary:
        report.missing.append("no summary.json: the run was not judged")
    _read_rounds(report)
    for entry in _participant_names(plan, summary, run_dir):
        report.participants.append(_read_participant(report, entry))
    return report


def _out(report, name, filename):
    return os.path.join(results.participant_output_dir(report.run_dir, name), filename)


def _read_rounds(report):
    server = next((p["name"] for p in _participant_names(report.plan, report.summary,
                                                         report.run_dir)
                   if p.get("role") == "server"), "server")
    records = results.round_records(results.read_eval_results(
        _out(report, server, "eval_results.raw")))
    if not records:
        report.missing.append(f"no evaluated round in {server}'s eval_results.raw")
    log = _out(report, server, "exp_print.log")
    start = training_start(log)
    times = server_round_times(log)
    if start is None:
        report.missing.append(f"no start of training in {server}'s exp_print.log: "
                              "rounds have no times")
    for record in records:
        seconds = times.get(record["Round"])
        report.rounds.append({
            "round": record["Round"],
            "time_s": round(seconds - start, 3) if None not in (seconds, start) else None,
            "metrics": results._numbers(record.get("Results_raw", {})),
        })
    report.training_start_s = start


def _read_participant(report, entry):
    name = entry["name"]
    folder = os.path.join(report.run_dir, "participants", name)
    row = {"name": name, "role": entry.get("role"), "host": entry.get("host"),
           "profile": entry.get("profile"), "exit_code": entry.get("exit_code"),
           "state": entry.get("state")}
    link = _load_json(os.path.join(folder, "link_stats.json"))
    row.update(up_bytes=(link or {}).get("up_bytes"), down_bytes=(link or {}).get("down_bytes"),
               qdisc_drops=(link or {}).get("qdisc_drops"))
    if link is None:
        report.missing.append(f"no link_stats.json for {name}: its link was never sampled")
    samples = read_resources(os.path.join(folder, "resources.csv"))
    cpu = [s["cpu_pct"] for s in samples if s.get("cpu_pct") is not None]
    memory = [s["memory_bytes"] for s in samples if s.get("memory_bytes") is not None]
    row.update(samples=len(samples), cpu_mean_pct=round(sum(cpu) / len(cpu), 2) if cpu else None,
               memory_peak_bytes=max(memory) if memory else entry.get("memory_peak_bytes"))
    if not samples:
        report.missing.append(f"no resources.csv for {name}: it was not sampled")
    metrics = read_system_metrics(_out(report, name, "system_metrics.log"))
    row["fs_system_metrics"] = metrics or {}
    if metrics is None:
        report.missing.append(f"no system_metrics.log for {name}: it did not finish")
    if row["role"] != "server":
        start = report.training_start_s
        times = client_update_times(_out(report, name, "exp_print.log"))
        report.updates[name] = {r: round(t - start, 3) for r, t in times.items()} \
            if start is not None else {}
    return row


# ---------------------------------------------------------------- targets and comparison

def parse_target(text):
    """('test_loss', '<=', 0.5) from 'test_loss<=0.5'; InputError for anything else."""
    found = _TARGET.match(text or "")
    if not found:
        raise InputError(f"--target: {text!r} is not a target; {TARGET_RULE}")
    return found.group(1), found.group(2), float(found.group(3))


def target_reached(report, target):
    """(round, time_s) of the first round whose metric meets the target, or None."""
    metric, op, value = target
    for entry in report.rounds:
        seen = entry["metrics"].get(metric)
        if seen is not None and (seen <= value if op == "<=" else seen >= value):
            return entry["round"], entry["time_s"]
    return None


def _final_metrics(report):
    return report.summary.get("final_metrics") or (
        report.rounds[-1]["metrics"] if report.rounds else {})


def run_row(report, target=None):
    """One run's comparable numbers: the row of ``compare``."""
    up = [p["up_bytes"] for p in report.participants if p["up_bytes"] is not None]
    down = [p["down_bytes"] for p in report.participants if p["down_bytes"] is not None]
    row = {
        "run_dir": report.run_dir, "testbed": report.summary.get("testbed"),
        "run_id": report.summary.get("run_id"), "status": report.summary.get("status"),
        "rounds": len(report.rounds),
        "training_s": report.rounds[-1]["time_s"] if report.rounds else None,
        "wall_time_s": report.summary.get("wall_time_s"),
        "up_bytes": sum(up) if up else None, "down_bytes": sum(down) if down else None,
        "final_metrics": _final_metrics(report),
    }
    if target is not None:
        reached = target_reached(report, target)
        row["target_round"], row["target_time_s"] = reached if reached else (None, None)
    return row


def compare(run_dirs, target_text=None):
    """The rows of ``flbed compare``; InputError for a bad target or a non-run directory."""
    target = parse_target(target_text) if target_text else None
    reports = [load_run(path) for path in run_dirs]
    known = sorted({name for r in reports for name in r.metric_names})
    if target and known and target[0] not in known:
        raise InputError(f"--target: no run has the metric {target[0]!r}; they have "
                         f"{', '.join(known)}")
    return {"target": target_text, "runs": [run_row(r, target) for r in reports],
            "missing": {r.run_dir: r.missing for r in reports if r.missing}}


# ---------------------------------------------------------------- text tables

def format_table(rows):
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths))
                     .rstrip() for row in rows)


def _num(value, digits=6):
    if value is None:
        return "-"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _bytes(value):
    if value is None:
        return "-"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{int(value)} B"


def shown_metrics(names):
    """Metrics worth a column: sample counts (``*_total``) stay out."""
    return [name for name in names if not name.endswith("_total")]


def rounds_table(report):
    metrics = shown_metrics(report.metric_names)
    rows = [("round", "time_s", *metrics)]
    rows += [(e["round"], _num(e["time_s"], 4), *(_num(e["metrics"].get(m)) for m in metrics))
             for e in report.rounds]
    return format_table(rows)


def participants_table(report):
    rows = [("participant", "role", "profile", "host", "up", "down", "drops", "mem_peak",
             "cpu_mean%", "fs_end_min", "fs_flops")]
    for p in report.participants:
        fs = p["fs_system_metrics"]
        rows.append((p["name"], p["role"] or "-", p["profile"] or "-", p["host"] or "-",
                     _bytes(p["up_bytes"]), _bytes(p["down_bytes"]), _num(p["qdisc_drops"]),
                     _bytes(p["memory_peak_bytes"]), _num(p["cpu_mean_pct"], 3),
                     _num(fs.get("fl_end_time_minutes"), 3), _num(fs.get("total_flops"))))
    return format_table(rows)


def compare_table(comparison):
    runs = comparison["runs"]
    metrics = shown_metrics(sorted({m for r in runs for m in r["final_metrics"]}))
    header = ["run", "status", "rounds", "training_s", "up", "down", *metrics]
    if comparison["target"]:
        header += ["target_round", "target_s"]
    rows = [tuple(header)]
    for run in runs:
        row = [run["run_id"] or os.path.basename(run["run_dir"]), run["status"] or "-",
               run["rounds"], _num(run["training_s"], 4), _bytes(run["up_bytes"]),
               _bytes(run["down_bytes"]), *(_num(run["final_metrics"].get(m)) for m in metrics)]
        if comparison["target"]:
            row += [_num(run["target_round"]), _num(run["target_time_s"], 4)]
        rows.append(tuple(row))
    return format_table(rows)


def report_json(report):
    return {"run_dir": report.run_dir, "status": report.summary.get("status"),
            "rounds": report.rounds, "participants": report.participants,
            "updates": {name: {str(r): t for r, t in times.items()}
                        for name, times in report.updates.items()},
            "missing": report.missing}


# ---------------------------------------------------------------- the manifest

def _fs_commit(source):
    """The commit of a FederatedScope checkout on the controller, when it is a git one."""
    if not source or not os.path.isdir(os.path.join(source, ".git")):
        return None
    try:
        done = subprocess.run(["git", "-C", source, "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def _host_records(run_dir):
    folder = os.path.join(run_dir, "hosts")
    names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    return [record for record in (_load_json(os.path.join(folder, n)) for n in names
                                  if n.endswith(".json")) if record]


def _host_entry(record):
    labels = [label or {} for label in record.get("image_labels") or []]
    images = []
    for image, label in zip(record.get("images") or [], labels + [{}] * len(record["images"])):
        images.append({"id": image.get("Id"), "tags": image.get("RepoTags"),
                       "digests": image.get("RepoDigests"),
                       "fs_identity": label.get("flbed.fs.identity"),
                       "fs_source": label.get("flbed.fs.source")})
    return {"docker_version": record.get("docker_version"),
            "kernel_version": record.get("kernel_version"),
            "operating_system": record.get("operating_system"),
            "architecture": record.get("architecture"),
            "cgroup_version": record.get("cgroup_version"), "images": images,
            "sampler": record.get("sampler")}


def build_manifest(run_dir, phases_s=None):
    """What ran: flbed, FederatedScope, and each host's engine, kernel and image."""
    plan = _load_json(os.path.join(run_dir, "plan.json")) or {}
    hosts = {record.get("host"): _host_entry(record) for record in _host_records(run_dir)}
    identities = sorted({image["fs_identity"] for host in hosts.values()
                         for image in host["images"] if image["fs_identity"]})
    source = plan.get("fs_source")
    commit = _fs_commit(source)
    commit = commit or next((i.split(":", 1)[1] for i in identities if i.startswith("git:")),
                            None)
    return {
        "flbed_version": __version__,
        "federatedscope": {"source": source, "commit": commit, "identities": identities,
                           "experiment": fsconfig.EXPERIMENT_NAME},
        # How compute was emulated: FederatedScope's wait untouched ("spinning") or replaced
        # by flbed's blocking one, and whether quotas bound from start-up or once listening.
        "emulation": {"fs_wait": plan.get("fs_wait"), "cpu_policy": plan.get("cpu_policy")},
        "hosts": hosts,
        "phases_s": phases_s or {},
    }


def write_manifest(run_dir, phases_s=None):
    manifest = build_manifest(run_dir, phases_s)
    _write_json(run_dir, "manifest.json", manifest)
    return manifest


def _write_json(run_dir, name, data):
    path = os.path.join(run_dir, name)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.chmod(path, 0o600)
