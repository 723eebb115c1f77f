"""Shared fixtures: where the repository is, and helpers every test level uses."""

import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
STANDIN = str(REPO / "tests" / "fs_standin")


def flbed(*args, fs_source=STANDIN, timeout=1800):
    """Run the flbed command as a user does, with FederatedScope taken from FS_SOURCE."""
    env = dict(os.environ, FLBED_FS_SOURCE=fs_source)
    return subprocess.run([sys.executable, "-m", "flbed", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def repo():
    return REPO
