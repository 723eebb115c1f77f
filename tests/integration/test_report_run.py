"""After a real run (stand-in framework, real Docker, real tc): the sampled link statistics and
resources, the manifest, and ``flbed results`` / ``flbed compare`` on the run directory."""

import csv
import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO

pytestmark = pytest.mark.integration
STANDIN = str(REPO / "tests" / "fs_standin")
NAME = "it-report"


def docker_ready():
    return shutil.which("docker") and subprocess.run(
        ["docker", "info"], capture_output=True, check=False).returncode == 0


if not docker_ready():
    pytest.skip("needs a running Docker engine (make test starts one)", allow_module_level=True)


def flbed(*args, timeout=1800):
    env = dict(os.environ, FLBED_FS_SOURCE=STANDIN)
    return subprocess.run([sys.executable, "-m", "flbed", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    testbed = {
        "name": NAME, "timeout": "5m",
        "federatedscope": {"config": {"data": {"type": "toy"}, "model": {"type": "lr"},
                                      "federate": {"total_round_num": 4}}},
        "profiles": {"small_device": {"extends": "raspberry_pi", "memory": "512m",
                                      "cpus": 0.5}},
        "server": {"profile": "small_device"},
        # Rounds of a second, so that every container lives through several samples.
        "clients": [{"profile": "small_device", "count": 2,
                     "env": {"FLBED_STANDIN_ROUND_S": "1.0"}}],
        "shaping": {"allow_missing": ["delay", "jitter", "loss"]},
    }
    path = root / f"{NAME}.yml"
    path.write_text(yaml.safe_dump(testbed))
    try:
        done = flbed("run", str(path), "--json", "-q", "--runs-root", str(root / "runs"))
    finally:
        flbed("teardown", NAME, "-q")
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)["run_dir"]


def participants(run_dir):
    return sorted(os.listdir(os.path.join(run_dir, "participants")))


def test_every_participant_has_link_stats_with_traffic(run_dir):
    assert participants(run_dir) == ["client-1", "client-2", "server"]
    for name in participants(run_dir):
        with open(os.path.join(run_dir, "participants", name, "link_stats.json")) as handle:
            link = json.load(handle)
        assert link["up_bytes"] > 0 and link["down_bytes"] > 0, (name, link)
        kinds = {(q["dev"], q["kind"]) for q in link["qdiscs"]}
        assert ("eth0", "ingress") in kinds, kinds        # download shaping was read too


def test_every_participant_has_resource_samples(run_dir):
    for name in participants(run_dir):
        with open(os.path.join(run_dir, "participants", name, "resources.csv")) as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) >= 2, name
        assert all(int(r["memory_bytes"]) > 0 for r in rows)
        # A 0.5 CPU quota: no sample may show more than half a core (plus sampling jitter).
        assert all(0 <= float(r["cpu_pct"]) <= 75 for r in rows if r["cpu_pct"]), rows


def test_the_manifest_names_versions_and_phases(run_dir):
    with open(os.path.join(run_dir, "manifest.json")) as handle:
        manifest = json.load(handle)
    host = manifest["hosts"]["localhost"]
    assert host["docker_version"] and host["kernel_version"] == os.uname().release
    assert host["images"][0]["id"].startswith("sha256:")
    assert host["images"][0]["fs_identity"].startswith("tree:")
    assert manifest["federatedscope"]["source"] == STANDIN
    assert manifest["phases_s"]["training"] > 0


def test_results_and_compare_read_the_run(run_dir):
    shown = flbed("results", run_dir)
    assert shown.returncode == 0, shown.stderr
    assert "round" in shown.stdout and "client-2" in shown.stdout
    assert "missing" not in shown.stderr, shown.stderr
    assert os.path.getsize(os.path.join(run_dir, "plots", "bytes.png")) > 10_000
    compared = flbed("compare", run_dir, run_dir, "--target", "test_avg_loss>=0", "--json")
    assert compared.returncode == 0, compared.stderr
    rows = json.loads(compared.stdout)["runs"]
    assert [r["target_round"] for r in rows] == [0, 0]
    assert rows[0]["up_bytes"] > 0
