"""The net_shaping role through ansible-playbook against real containers."""

import json
import os
import subprocess
import sys

import pytest

from .conftest_link import (  # noqa: F401  (fixtures are used by name)
    REPO_ROOT, TEST_TESTBED, ansible_bin, busybox_image, netem_missing_reason,
    qdiscs_in_container, remove_container, start_container)

pytestmark = pytest.mark.integration


@pytest.fixture
def two_containers(busybox_image):
    names = ["flbedtest-role-phone", "flbedtest-role-iot"]
    for name in names:
        start_container(name, busybox_image)
    yield names
    for name in names:
        remove_container(name)


def run_role(tmp_path, role_vars, check=False):
    """Apply the role once; return the fact net_shaping_results it set."""
    playbook = tmp_path / "role.yml"
    playbook.write_text(json.dumps([{
        "hosts": "localhost", "connection": "local", "gather_facts": False,
        "tasks": [
            {"name": "Apply the role", "ansible.builtin.include_role": {"name": "net_shaping"},
             "vars": role_vars},
            {"name": "Show the record", "ansible.builtin.debug": {"var": "net_shaping_results"}},
        ]}]))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO_ROOT, "ansible.cfg"),
               ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    argv = [ansible_bin("ansible-playbook"), "-i", "localhost,", str(playbook)]
    proc = subprocess.run(argv + (["--check"] if check else []), cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    tasks = {t["task"]["name"]: t["hosts"]["localhost"]
             for t in json.loads(proc.stdout)["plays"][0]["tasks"]}
    return tasks["Show the record"]["net_shaping_results"]


def participants(names):
    phone, iot = names
    return [
        {"container": phone, "name": "client_1", "memory": "1536m",
         "link": {"up_rate_bps": 5000000, "down_rate_bps": 20000000}},
        {"container": iot, "name": "client_2",
         "link": {"up_rate_bps": 128000, "down_rate_bps": 384000, "delay_ms": 300,
                  "loss_pct": 5}},
    ]


def test_role_shapes_every_participant_and_records_the_result(two_containers, tmp_path):
    allow = ["delay_ms", "loss_pct"] if netem_missing_reason() else []
    role_vars = {"net_shaping_participants": participants(two_containers),
                 "net_shaping_testbed": TEST_TESTBED, "net_shaping_allow_missing": allow}

    checked = run_role(tmp_path, role_vars, check=True)
    assert [r["changed"] for r in checked] == [True, True]
    assert qdiscs_in_container(two_containers[0])[0]["kind"] == "noqueue"

    record = run_role(tmp_path, role_vars)
    assert record == [
        {"participant": "client_1", "changed": True, "not_applied": []},
        {"participant": "client_2", "changed": True, "not_applied": allow}]
    tbf = qdiscs_in_container(two_containers[1])[0]
    assert tbf["kind"] == "tbf" and tbf["options"]["rate"] == 128000 // 8

    again = run_role(tmp_path, role_vars)
    assert [r["changed"] for r in again] == [False, False]

    removed = run_role(tmp_path, dict(role_vars, net_shaping_state="absent"))
    assert [r["changed"] for r in removed] == [True, True]
    assert [q["kind"] for q in qdiscs_in_container(two_containers[0])] == ["noqueue"]
