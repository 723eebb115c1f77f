"""Result parsing on FederatedScope output files produced by real runs."""

import os
import shutil

import pytest

from flbed import results
from tests.conftest import REPO

FIXTURES = REPO / "tests" / "fixtures" / "fs_outputs"


def records(run, participant="server"):
    return results.read_eval_results(str(FIXTURES / run / participant / "flbed" /
                                         "eval_results.raw"))


def test_a_finished_run_has_every_round_and_the_final_evaluation():
    found = records("ok")
    assert results.rounds_completed(found) == 5
    final = results.final_metrics(found)
    assert final["test_loss"] == pytest.approx(571.6077880859375)
    assert final["val_avg_loss"] == pytest.approx(0.5795619487762451)


def test_numpy_scalars_and_nan_in_a_line_are_read():
    line = ("{'Role': 'Server #', 'Round': 'Final', 'Results_raw': {'a': np.float64(1.5), "
            "'b': np.float64(nan), 'c': [np.float32(2.0)]}}")
    record = results.parse_record(line)
    assert record["Results_raw"] == {"a": 1.5, "b": None, "c": [2.0]}


def test_a_line_cut_short_is_skipped():
    assert results.parse_record("{'Role': 'Server #', 'Round': 3, 'Results_raw': {'te") is None


def test_a_failed_run_yields_what_it_got():
    found = records("failed")
    assert results.rounds_completed(found) == 1
    final = results.final_metrics(found)  # the mean over clients of the last round
    assert final["test_loss"] == pytest.approx(3877.598876953125, rel=1e-6)


def test_client_records_do_not_count_as_server_rounds():
    assert results.rounds_completed(records("ok", "client_1")) == 0


def plan_for(run_dir, hosts=("localhost",)):
    return {
        "testbed": "demo", "run_id": "r1", "run_dir": str(run_dir), "timeout_s": 60.0,
        "total_rounds": 5, "warnings": [],
        "participants": [
            {"name": "server", "role": "server", "host": hosts[0], "profile": "edge_server",
             "container": "flbed-demo-server"},
            {"name": "client-1", "role": "client", "host": hosts[-1],
             "profile": "iot_minimal", "container": "flbed-demo-client-1"},
        ],
    }


def copy_server_output(run, run_dir):
    target = run_dir / "participants" / "server" / "out"
    shutil.copytree(FIXTURES / run / "server", target)


def test_summary_of_a_successful_run(tmp_path):
    copy_server_output("ok", tmp_path)
    outcome = {"host": "localhost", "started_at": 100.0, "ended_at": 130.5, "finished": True,
               "timed_out": False, "failed_participants": [],
               "participants": [
                   {"name": "server", "state": "exited", "exit_code": 0, "oom_killed": False},
                   {"name": "client-1", "state": "exited", "exit_code": 0,
                    "oom_killed": False}]}
    shaping = [{"participant": "client-1", "changed": True, "not_applied": ["delay_ms"]}]
    summary = results.build_summary(plan_for(tmp_path), [outcome], shaping=shaping)
    assert summary["status"] == "succeeded" and summary["reasons"] == []
    assert summary["wall_time_s"] == 30.5
    assert summary["rounds_completed"] == 5
    assert [p["exit_code"] for p in summary["participants"]] == [0, 0]
    assert summary["links_not_applied"] == {"client-1": ["delay_ms"]}


def test_summary_of_a_failed_run_names_the_participant(tmp_path):
    copy_server_output("failed", tmp_path)
    dead = {"name": "client-1", "container": "flbed-demo-client-1", "state": "exited",
            "exit_code": 137, "oom_killed": True, "reason": "killed by the out-of-memory killer",
            "log_tail": "Killed"}
    outcome = {"host": "localhost", "started_at": 1.0, "ended_at": 2.0, "finished": False,
               "timed_out": False, "failed_participants": [dead], "participants": [dead]}
    summary = results.build_summary(plan_for(tmp_path), [outcome])
    assert summary["status"] == "failed"
    assert summary["reasons"] == ["client-1: killed by the out-of-memory killer"]
    assert summary["participants"][1]["oom_killed"] is True
    assert summary["rounds_completed"] == 1


def test_a_host_failure_and_a_timeout_fail_the_run(tmp_path):
    timed_out = {"host": "localhost", "started_at": 1.0, "ended_at": 61.0, "finished": False,
                 "timed_out": True, "failed_participants": [], "participants": []}
    failure = {"host": "pi1", "task": "Build the participant image", "msg": "no space"}
    summary = results.build_summary(plan_for(tmp_path), [timed_out], [failure])
    assert summary["status"] == "failed"
    assert summary["reasons"] == ["pi1: no space", "the run passed its timeout of 60 s"]
    assert summary["participants"][0]["state"] == "not started"


def test_a_host_that_stopped_answering_is_named_as_lost(tmp_path):
    copy_server_output("failed", tmp_path)
    server_side = {"host": "lab1", "started_at": 1.0, "ended_at": 9.0, "finished": False,
                   "timed_out": False, "failed_participants": [], "participants": []}
    summary = results.build_summary(plan_for(tmp_path, hosts=("lab1", "lab3")), [server_side])
    assert summary["status"] == "failed"
    assert [f["host"] for f in summary["failures"]] == ["lab3"]
    assert summary["reasons"][0].startswith("lab3: stopped answering during the run")


def test_a_host_that_failed_on_its_own_is_not_also_called_lost(tmp_path):
    failure = {"host": "lab3", "task": "Provision this host", "msg": "no space"}
    server_side = {"host": "lab1", "started_at": 1.0, "ended_at": 9.0, "finished": True,
                   "timed_out": False, "failed_participants": [], "participants": []}
    summary = results.build_summary(plan_for(tmp_path, hosts=("lab1", "lab3")), [server_side],
                                    [failure])
    assert summary["reasons"] == ["lab3: no space"]
