"""flbed_workdirs through real Ansible: check, apply, check again, apply again. Needs root
(the directories are given to the participants' user); no Docker."""

import os

import pytest

from .conftest_link import run_flbed_link

pytestmark = pytest.mark.integration

PARTICIPANTS = [{"name": "server", "config": "role: server\n"},
                {"name": "client-1", "config": "role: client\n"}]


@pytest.fixture(autouse=True)
def as_root():
    if os.geteuid() != 0:
        pytest.skip("changing a directory's owner needs root")


def test_four_step_idempotence_with_diff(tmp_path):
    root = tmp_path / "testbed"
    args = {"root": str(root), "uid": 10001, "gid": 10001, "participants": PARTICIPANTS}
    config = str(root / "client-1" / "config.yaml")

    first_check = run_flbed_link(tmp_path, args, check=True, module="flbed_workdirs")
    assert first_check["changed"] is True, first_check
    assert not root.exists(), "check mode must change nothing"
    assert first_check["diff"]["after"][config] == "role: client\n"

    applied = run_flbed_link(tmp_path, args, module="flbed_workdirs")
    assert applied["changed"] is True, applied
    assert applied["changes"] == first_check["changes"]
    assert (root / "client-1" / "config.yaml").read_text() == "role: client\n"
    assert (root / "server" / "control").stat().st_uid == 10001

    second_check = run_flbed_link(tmp_path, args, check=True, module="flbed_workdirs")
    assert second_check["changed"] is False and second_check["changes"] == [], second_check
    again = run_flbed_link(tmp_path, args, module="flbed_workdirs")
    assert again["changed"] is False and again["changes"] == [], again
