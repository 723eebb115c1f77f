"""docker_host's memory cgroup step on temporary files standing for a Raspberry Pi's.

The role reads the running kernel's command line and edits the boot command line; both
paths are role variables, so the real step runs here with ansible-playbook on local files.
"""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

PI_CMDLINE = ("console=serial0,115200 console=tty1 root=PARTUUID=1234-02 rootfstype=ext4 "
              "fsck.repair=yes rootwait quiet")
FIRMWARE_TOKENS = "coherent_pool=1M cgroup_disable=memory "
PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: docker_host
        tasks_from: memory_cgroup.yml
"""


def ansible_playbook():
    path = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    if not os.path.exists(path):
        pytest.skip("needs ansible-playbook beside this Python (make setup installs it)")
    return path


def run_step(tmp_path, running, boot_files, allow_reboot=False, check=False):
    proc_cmdline = tmp_path / "proc_cmdline"
    proc_cmdline.write_text(running + "\n")
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    extra = {"docker_host_proc_cmdline": str(proc_cmdline),
             "docker_host_boot_cmdline_files": [str(path) for path in boot_files],
             "docker_host_allow_reboot": allow_reboot,
             "ansible_python_interpreter": sys.executable}
    command = [ansible_playbook(), "-i", "localhost,", "-c", "local", str(playbook),
               "-e", json.dumps(extra)] + (["--check"] if check else [])
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, ANSIBLE_NOCOLOR="1"))


def test_kernel_with_memory_cgroup_leaves_boot_files_alone(tmp_path):
    boot = tmp_path / "cmdline.txt"
    boot.write_text(PI_CMDLINE + "\n")
    done = run_step(tmp_path, PI_CMDLINE, [boot])
    assert done.returncode == 0, done.stdout
    assert boot.read_text() == PI_CMDLINE + "\n"


def test_affected_pi_gets_tokens_appended_and_is_told_to_reboot(tmp_path):
    firmware, legacy = tmp_path / "firmware_cmdline.txt", tmp_path / "cmdline.txt"
    firmware.write_text(PI_CMDLINE + "\n")
    legacy.write_text("not this one\n")

    done = run_step(tmp_path, FIRMWARE_TOKENS + PI_CMDLINE, [firmware, legacy])
    assert done.returncode != 0
    assert "now enables it for the next boot" in done.stdout
    assert "docker_host_allow_reboot: true" in done.stdout
    assert firmware.read_text() == PI_CMDLINE + " cgroup_enable=memory cgroup_memory=1\n"
    assert legacy.read_text() == "not this one\n"
    assert [p for p in os.listdir(tmp_path) if p.startswith("firmware_cmdline.txt.")], \
        "a backup of the original line is kept"

    again = run_step(tmp_path, FIRMWARE_TOKENS + PI_CMDLINE, [firmware, legacy])
    assert again.returncode != 0
    assert "already enables it for the next boot" in again.stdout
    assert firmware.read_text() == PI_CMDLINE + " cgroup_enable=memory cgroup_memory=1\n"


def test_older_release_uses_boot_cmdline(tmp_path):
    legacy = tmp_path / "cmdline.txt"
    legacy.write_text(PI_CMDLINE + " cgroup_memory=1\n")
    done = run_step(tmp_path, FIRMWARE_TOKENS + PI_CMDLINE,
                    [tmp_path / "absent_firmware.txt", legacy])
    assert done.returncode != 0
    assert legacy.read_text() == PI_CMDLINE + " cgroup_memory=1 cgroup_enable=memory\n"


def test_reboot_allowed_but_nothing_changed_does_not_reboot(tmp_path):
    # The file already has the tokens, yet the kernel runs without them: rebooting would be
    # a guess (the bootloader may read another file), so the step stops and says so.
    boot = tmp_path / "cmdline.txt"
    fixed = PI_CMDLINE + " cgroup_enable=memory cgroup_memory=1\n"
    boot.write_text(fixed)
    done = run_step(tmp_path, FIRMWARE_TOKENS + PI_CMDLINE, [boot], allow_reboot=True)
    assert done.returncode != 0
    assert "already enables it for the next boot" in done.stdout
    assert "Reboot localhost" in done.stdout and "skipping: [localhost]" in done.stdout
    assert boot.read_text() == fixed


def test_affected_host_without_boot_file_is_refused(tmp_path):
    done = run_step(tmp_path, FIRMWARE_TOKENS + PI_CMDLINE, [tmp_path / "nothing.txt"])
    assert done.returncode != 0
    assert "none of" in done.stdout and "cgroup_enable=memory cgroup_memory=1" in done.stdout
