"""Secrets given to Ansible never reach flbed's output, run directories or runner files.

The inventory is this machine's, with a become password, a login password and an SSH key
added as a lab's inventory would have them; the local connection ignores all three, so the
run works as usual. Everything flbed writes or prints is then searched for them: its
output, the run directory, and ansible-runner's private data directory (its artifacts,
event files and command line), copied while the run goes on because flbed removes it at
the end. The run directory must be its owner's alone.
"""

import os
import pathlib
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import uuid

import pytest
import yaml

from tests.conftest import REPO, STANDIN, docker_ready, flbed, labelled, write_testbed

pytestmark = pytest.mark.integration

if not docker_ready():
    pytest.skip("needs a running Docker engine (make test starts one)", allow_module_level=True)

NAME = "rel-secrets"


@pytest.fixture
def secrets():
    tag = uuid.uuid4().hex
    return {"become": f"s3cret-become-{tag}", "password": f"s3cret-login-{tag}",
            "key": f"s3cret-key-{tag}"}


def secret_inventory(tmp_path, secrets):
    key = tmp_path / "lab_key"
    key.write_text(f"-----BEGIN OPENSSH PRIVATE KEY-----\n{secrets['key']}\n"
                   "-----END OPENSSH PRIVATE KEY-----\n")
    key.chmod(0o600)
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
        "ansible_connection": "local",
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "ansible_become_password": secrets["become"],
        "ansible_password": secrets["password"],
        "ansible_ssh_private_key_file": str(key)}}}}))
    return str(inventory)


class PrivateDirCopier:
    """Copies flbed's ansible-runner private data directories of the testbed, as they are
    while the run goes on, and notes their modes."""

    def __init__(self, target):
        self.target = target
        self.modes = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join()

    def _loop(self):
        while not self.stopping.wait(0.5):
            pattern = f"flbed-ansible-{NAME}-*"
            for source in pathlib.Path(tempfile.gettempdir()).glob(pattern):
                try:
                    self.modes[str(source)] = stat.S_IMODE(source.stat().st_mode)
                    shutil.copytree(source, self.target / source.name, dirs_exist_ok=True,
                                    ignore_dangling_symlinks=True,
                                    copy_function=_copy_if_there)
                except (shutil.Error, OSError):
                    continue  # a folder removed meanwhile: what was copied stays


def _copy_if_there(source, target):
    try:
        shutil.copy2(source, target)
    except OSError:
        pass  # removed meanwhile: a file of a finished step


def files_naming(folder, needles):
    found = []
    for path in pathlib.Path(folder).rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            found += [f"{path}: {n}" for n in needles if n.encode() in data]
    return found


def not_owner_only(folder):
    wrong = []
    for path in [pathlib.Path(folder), *pathlib.Path(folder).rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_symlink():
            continue
        if (path.is_dir() and mode != 0o700) or (not path.is_dir() and mode & 0o077):
            wrong.append(f"{path} {mode:o}")
    return wrong


def test_secrets_of_the_inventory_stay_out_of_everything_flbed_writes(
        tmp_path, secrets, teardown_after):
    teardown_after(NAME)
    inventory = secret_inventory(tmp_path, secrets)
    testbed = write_testbed(tmp_path, NAME, rounds=2)
    runs = tmp_path / "runs"
    copies = tmp_path / "private-copies"

    with PrivateDirCopier(copies) as copier:
        done = subprocess.run(
            [sys.executable, "-m", "flbed", "run", testbed, "-i", inventory, "--json",
             "--runs-root", str(runs)],
            cwd=REPO, env=dict(os.environ, FLBED_FS_SOURCE=STANDIN), capture_output=True,
            text=True, timeout=1800)
        torn = flbed("teardown", NAME, "-i", inventory)
    assert done.returncode == 0, done.stderr[-3000:]
    assert torn.returncode == 0, torn.stderr[-3000:]
    assert labelled("container", NAME) == []

    assert copier.modes and set(copier.modes.values()) == {0o700}, copier.modes
    assert list(copies.rglob("job_events/*.json")), "no runner artifacts were copied"
    needles = list(secrets.values())
    for text in (done.stdout, done.stderr, torn.stdout, torn.stderr):
        assert not [n for n in needles if n in text]
    assert files_naming(copies, needles) == []
    assert files_naming(runs, needles) == []
    assert not_owner_only(runs / NAME) == []
