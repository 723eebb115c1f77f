"""Read what a run brought back and write its summary.

A run directory holds ``participants/<name>/`` for every participant: ``config.yaml``,
``container.log`` and FederatedScope's output under ``out/<expname>/``. The server's
``eval_results.raw`` has one Python-literal mapping per evaluation, with ``Role``, ``Round``
(an int, or ``"Final"``) and ``Results_raw``; a run that died may have a cut last line, which
is skipped.
"""

import ast
import glob
import json
import os
import re

from . import fsconfig

SUCCEEDED, FAILED = "succeeded", "failed"


def participant_output_dir(run_dir, name):
    return os.path.join(run_dir, "participants", name, "out", fsconfig.EXPERIMENT_NAME)


# numpy 2 writes np.float64(1.5) and bare nan/inf into FederatedScope's dict lines.
_NUMPY_SCALAR = re.compile(r"np\.(?:float|int)\d*\(([^()]*)\)")
_NOT_FINITE = re.compile(r"(?<![\w'])-?(?:nan|inf)(?![\w'])")
SERVER_ROLE = "Server #"


def parse_record(line):
    """One eval_results line as a dict, or None for a line cut short or not a record."""
    text = _NOT_FINITE.sub("None", _NUMPY_SCALAR.sub(r"\1", line.strip()))
    try:
        record = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None
    return record if isinstance(record, dict) else None


def read_eval_results(path):
    """The evaluation records of one eval_results.raw, in file order; [] when absent."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8", errors="replace") as handle:
        return [record for record in map(parse_record, handle) if record is not None]


def server_records(run_dir):
    return read_eval_results(
        os.path.join(participant_output_dir(run_dir, "server"), "eval_results.raw"))


def round_records(records):
    """The server's per-round evaluations; FederatedScope numbers rounds from 0."""
    return [r for r in records
            if r.get("Role") == SERVER_ROLE and isinstance(r.get("Round"), int)]


def rounds_completed(records):
    rounds = [r["Round"] for r in round_records(records)]
    return max(rounds) + 1 if rounds else 0


def final_metrics(records):
    """The server's last word: the "Final" evaluation, else the mean of the last round's."""
    for record in reversed(records):
        if record.get("Role") == SERVER_ROLE and record.get("Round") == "Final":
            raw = record.get("Results_raw", {})
            return _numbers(raw.get("client_summarized_weighted_avg", raw))
    rounds = round_records(records)
    return _numbers(rounds[-1].get("Results_raw", {})) if rounds else {}


def _numbers(results):
    """Plain numbers of a result mapping; a per-client list becomes its mean."""
    flat = {}
    for key, value in results.items():
        if isinstance(value, list):
            value = [v for v in value if isinstance(v, (int, float))]
            value = sum(value) / len(value) if value else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[key] = value
    return flat


def _participant_entries(plan, outcomes):
    states = {}
    for outcome in outcomes:
        for entry in outcome.get("participants", []):
            states[entry["name"]] = entry
    entries = []
    for participant in plan["participants"]:
        state = states.get(participant["name"], {})
        entries.append({
            "name": participant["name"], "role": participant["role"],
            "host": participant["host"], "profile": participant["profile"],
            "container": participant["container"],
            "exit_code": state.get("exit_code"), "state": state.get("state", "not started"),
            "oom_killed": state.get("oom_killed", False),
            "memory_limit_bytes": state.get("memory_bytes"),
            "memory_peak_bytes": state.get("memory_peak_bytes"),
        })
    return entries


def _emulation(plan, outcomes):
    """How compute was emulated: the wait, when quotas bound, and when each was set."""
    planned = {p["name"]: p for p in plan["participants"]}
    quotas = {}
    for outcome in outcomes:
        for entry in outcome.get("cpu_quotas") or []:
            participant = planned.get(entry["name"], {})
            quotas[entry["name"]] = {
                "cpus": entry["cpus"], "applied_at": entry["applied_at"],
                "from": participant.get("cpus_from"),
                "throughput_steps_per_s": participant.get("throughput_steps_per_s")}
    return {"fs_wait": plan.get("fs_wait"), "cpu_policy": plan.get("cpu_policy"),
            "cpu_quotas": quotas,
            "calibrations": (plan.get("workload") or {}).get("calibrations", {})}


LOST_HOST = ("stopped answering during the run (unreachable over SSH); its participants were "
             "neither collected nor torn down: run `flbed teardown` once it answers again")


def lost_hosts(plan, outcomes, host_failures):
    """Hosts of the testbed that left neither a launch outcome nor a failure of their own.

    Ansible drops a host that stops answering from the rest of the play without running
    its rescue, so such a host reports nothing; its silence is what names it.
    """
    heard = {o.get("host") for o in outcomes} | {f.get("host") for f in host_failures}
    hosts = plan.get("hosts") or sorted({p["host"] for p in plan["participants"]})
    return [host for host in hosts if host not in heard]


def build_summary(plan, outcomes, host_failures=(), shaping=()):
    """The run's summary.json content from the plan, each host's launch outcome and errors.

    ``shaping`` holds net_shaping's record per participant; what it could not apply (a
    kernel without netem, allowed by the testbed) is written down, never left silent.
    """
    records = server_records(plan["run_dir"])
    failures = [dict(f, kind="participant") for o in outcomes
                for f in o.get("failed_participants", [])]
    failures += [dict(f, kind="host") for f in host_failures]
    failures += [{"kind": "host", "host": host, "task": None, "msg": LOST_HOST}
                 for host in lost_hosts(plan, outcomes, host_failures)]
    timed_out = any(_true(o.get("timed_out")) for o in outcomes)
    finished = any(o.get("finished") for o in outcomes
                   if any(p["role"] == "server" and p["host"] == o.get("host")
                          for p in plan["participants"]))
    ok = finished and not failures and not timed_out
    started = [o["started_at"] for o in outcomes if o.get("started_at")]
    ended = [o["ended_at"] for o in outcomes if o.get("ended_at")]
    reasons = [f"{f.get('name') or f.get('host')}: {f.get('reason') or f.get('msg')}"
               for f in failures]
    if timed_out:
        reasons.append(f"the run passed its timeout of {plan['timeout_s']:g} s")
    return {
        "testbed": plan["testbed"], "run_id": plan["run_id"],
        "status": SUCCEEDED if ok else FAILED,
        "reasons": reasons,
        "timed_out": timed_out,
        "stalled": any(_true(o.get("stalled")) for o in outcomes),
        "timeout_s": plan["timeout_s"],
        "fault_timeout_s": plan.get("fault_timeout_s"),
        "wall_time_s": round(max(ended) - min(started), 3) if started and ended else None,
        "rounds_completed": rounds_completed(records),
        "total_rounds": plan["total_rounds"],
        "final_metrics": final_metrics(records),
        "participants": _participant_entries(plan, outcomes),
        "failures": failures,
        "warnings": plan.get("warnings", []),
        "links_not_applied": {entry["participant"]: entry["not_applied"]
                              for entry in shaping if entry.get("not_applied")},
        "emulation": _emulation(plan, outcomes),
    }


def _true(value):
    """A flag from a launch outcome; Ansible may hand a templated boolean over as text."""
    return value is True or str(value).lower() == "true"


def write_summary(run_dir, summary):
    path = os.path.join(run_dir, "summary.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2, sort_keys=True)
        handle.write("\n")


def load_summary(run_dir):
    with open(os.path.join(run_dir, "summary.json"), encoding="utf-8") as handle:
        return json.load(handle)


def latest_run_dir(runs_root, testbed):
    runs = sorted(glob.glob(os.path.join(runs_root, testbed, "*", "summary.json")))
    return os.path.dirname(runs[-1]) if runs else None
