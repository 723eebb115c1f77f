"""Shared fixtures: where the repository is, and helpers every test level uses."""

import hashlib
import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[1]
STANDIN = str(REPO / "tests" / "fs_standin")
WORKDIR_ROOT = "/var/lib/flbed"


def load_module(monkeypatch, path, utils=()):
    """A custom Ansible module of plugins/modules/ loaded for a unit test, without Ansible's
    packing: each name in UTILS (a module of plugins/module_utils/) stands in for
    ``ansible.module_utils.<name>``, which is where the module imports it from."""
    sys.path.insert(0, str(REPO / "plugins" / "module_utils"))
    for name in utils:
        monkeypatch.setitem(sys.modules, f"ansible.module_utils.{name}",
                            importlib.import_module(name))
    spec = importlib.util.spec_from_file_location(f"{pathlib.Path(path).stem}_for_tests",
                                                  REPO / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def flbed(*args, fs_source=STANDIN, timeout=1800):
    """Run the flbed command as a user does, with FederatedScope taken from FS_SOURCE."""
    env = dict(os.environ, FLBED_FS_SOURCE=fs_source)
    return subprocess.run([sys.executable, "-m", "flbed", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def repo():
    return REPO


# ---------------------------------------------------------------- integration helpers

def docker_ready():
    return bool(shutil.which("docker")) and subprocess.run(
        ["docker", "info"], capture_output=True, check=False).returncode == 0


def standin_testbed(name, rounds=3, clients=2, timeout="5m", step_s=0.2, client_env=None):
    """A small stand-in testbed as a dict: a server and CLIENTS alike clients, each a
    Raspberry Pi with 512 MB; CLIENT_ENV adds one more client with that environment."""
    testbed = {
        "name": name,
        "timeout": timeout,
        "federatedscope": {"config": {"data": {"type": "toy"}, "model": {"type": "lr"},
                                      "federate": {"total_round_num": rounds}}},
        "profiles": {"small_device": {"extends": "raspberry_pi", "memory": "512m",
                                      "cpus": 0.5}},
        "server": {"profile": "small_device"},
        "clients": [{"profile": "small_device", "count": clients,
                     "env": {"FLBED_STANDIN_ROUND_S": str(step_s)}}],
        "shaping": {"allow_missing": ["delay", "jitter", "loss"]},
    }
    if client_env:
        testbed["clients"].append({"profile": "small_device", "env": client_env})
    return testbed


def save_testbed(tmp_path, testbed):
    path = pathlib.Path(tmp_path) / f"{testbed['name']}.yml"
    path.write_text(yaml.safe_dump(testbed))
    return str(path)


def write_testbed(tmp_path, name, **settings):
    return save_testbed(tmp_path, standin_testbed(name, **settings))


def labelled(kind, name):
    """IDs of the Docker objects (container, network) labelled with testbed NAME."""
    listing = subprocess.run(
        ["docker", kind, "ls", "-q", "--filter", f"label=flbed.testbed={name}"]
        + (["-a"] if kind == "container" else []),
        capture_output=True, text=True, check=True)
    return listing.stdout.split()


def container_pid(container):
    found = subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", container],
                           capture_output=True, text=True, check=False)
    pid = found.stdout.strip()
    return int(pid) if found.returncode == 0 and pid.isdigit() and pid != "0" else None


def netns_qdiscs(container):
    """[(device, kind, rate or None)] of every qdisc in a running container's network
    namespace, read from the host as flbed reads them; None when it does not run."""
    pid = container_pid(container)
    if pid is None:
        return None
    shown = subprocess.run(["nsenter", "-t", str(pid), "-n", "tc", "-j", "qdisc", "show"],
                           capture_output=True, text=True, check=True)
    return sorted((q["dev"], q["kind"], (q.get("options") or {}).get("rate"))
                  for q in json.loads(shown.stdout or "[]"))


@pytest.fixture
def teardown_after():
    """Tear each testbed named to it down after the test, whatever the test's outcome."""
    names = []
    yield names.append
    for name in names:
        flbed("teardown", name, "-q")


def _tree_digest(root):
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in ("build", "__pycache__")
                         and not d.endswith(".egg-info"))
        for name in sorted(files):
            path = os.path.join(folder, name)
            digest.update(os.path.relpath(path, root).encode() + b"\0")
            digest.update(pathlib.Path(path).read_bytes())
    return digest.hexdigest()[:12]


@pytest.fixture(scope="session")
def frozen_standin():
    """The stand-in, copied once per content to .cache/standin/<digest>: a test session
    builds its participant image once, however the working tree changes meanwhile, and the
    image is reused while the stand-in stays the same."""
    return freeze_standin()


def freeze_standin():
    """The frozen stand-in's directory (see the fixture frozen_standin); benchmarks use it
    too, so that they reuse the tests' participant image."""
    target = REPO / ".cache" / "standin" / _tree_digest(STANDIN)
    if not target.exists():
        scratch = target.with_name(f"{target.name}.{os.getpid()}.part")
        shutil.copytree(STANDIN, scratch, ignore=shutil.ignore_patterns(
            "build", "*.egg-info", "__pycache__"))
        try:
            os.rename(scratch, target)
        except OSError:  # another session made it first
            shutil.rmtree(scratch, ignore_errors=True)
    return str(target)
