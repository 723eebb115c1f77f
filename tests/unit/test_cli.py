"""The command line as a user meets it: exit codes, one-line errors, no tracebacks."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


def flbed(*args, cwd=REPO):
    env = {k: v for k, v in os.environ.items() if k != "FLBED_FS_SOURCE"}  # the file decides
    return subprocess.run([sys.executable, "-m", "flbed", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def broken(tmp_path):
    path = tmp_path / "broken.yml"
    path.write_text("name: demo\nserver: {profile: edge_server}\n"
                    "clients:\n  - {profile: phablet, count: 0}\n"
                    "profiles: {p: {extends: iot_minimal, memory: lots}}\n")
    return str(path)


@pytest.mark.parametrize("command", ["validate", "plan", "provision", "run"])
def test_a_broken_file_exits_2_with_one_line_per_problem(command, broken):
    done = flbed(command, broken)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert "flbed: clients[0].count: 0 is not allowed; use a whole number from 1 to 500" in lines
    assert any(line.startswith("flbed: clients[0].profile: unknown profile 'phablet'")
               for line in lines)
    assert any(line.startswith("flbed: profiles.p.memory: 'lots'") for line in lines)
    assert len(lines) == 3


def test_unknown_inventory_exits_2(tmp_path):
    done = flbed("validate", "testbeds/default.yml", "-i", str(tmp_path / "nowhere"))
    assert done.returncode == 2
    assert "does not exist" in done.stderr and "Traceback" not in done.stderr


def test_unsafe_testbed_name_for_teardown_exits_2():
    done = flbed("teardown", "x; rm -rf /")
    assert done.returncode == 2
    assert done.stderr.startswith("flbed: NAME: 'x; rm -rf /' is not a testbed name")


def test_validate_and_plan_of_the_default_testbed():
    assert flbed("validate", "testbeds/default.yml").returncode == 0
    done = flbed("plan", "testbeds/default.yml", "--json")
    assert done.returncode == 0
    made = json.loads(done.stdout)
    assert [p["profile"] for p in made["participants"]] == [
        "edge_server", "smartphone_high", "smartphone_low", "raspberry_pi"]


def test_profiles_lists_the_builtins():
    done = flbed("profiles")
    assert done.returncode == 0
    for name in ("edge_server", "smartphone_high", "smartphone_low", "raspberry_pi",
                 "iot_minimal"):
        assert name in done.stdout


def test_an_unreachable_framework_source_stops_before_any_host_is_touched(tmp_path):
    testbed = tmp_path / "nosource.yml"
    testbed.write_text(
        "name: nosource\nserver: {profile: edge_server}\nclients: [{profile: iot_minimal}]\n"
        f"federatedscope: {{source: 'git+file://{tmp_path}/missing-repo@0123abcd'}}\n")
    done = flbed("run", str(testbed), "--runs-root", str(tmp_path / "runs"))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flbed: cannot reach the FederatedScope")
    assert "FLBED_FS_SOURCE=/path/to/FederatedScope" in lines[0]
    assert not (tmp_path / "runs").exists()
