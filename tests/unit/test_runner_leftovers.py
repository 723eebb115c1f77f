"""What teardown does about a killed flbed's private data directories and processes."""

import os
import subprocess
import sys
import tempfile
import time

import pytest

from flbed import runner


@pytest.fixture
def temp_root(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def dead_pid():
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def private_dir(root, testbed, pid):
    path = root / f"{runner.private_dir_prefix(testbed)}{pid}-abc123"
    path.mkdir()
    return path


def test_only_directories_of_a_gone_flbed_are_leftovers(temp_root):
    gone = private_dir(temp_root, "fleet", dead_pid())
    private_dir(temp_root, "fleet", os.getpid())          # this flbed still runs
    private_dir(temp_root, "fleet-b", dead_pid())         # another testbed's, same prefix
    assert runner.leftover_private_dirs("fleet") == [str(gone)]


def test_stopping_leftover_runs_ends_their_processes_and_removes_their_directory(temp_root):
    gone = private_dir(temp_root, "fleet", dead_pid())
    env = dict(os.environ, ANSIBLE_LOCAL_TEMP=str(gone / "tmp"))
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.2)  # let the orphan's environment be readable
        runner.stop_leftover_runs("fleet")
        assert orphan.wait(timeout=10) == -9
        assert bystander.poll() is None
        assert not gone.exists()
    finally:
        for process in (orphan, bystander):
            process.kill()
            process.wait()
