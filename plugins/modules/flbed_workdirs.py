#!/usr/bin/python
"""Ansible module: every participant's host directories and config file in one module run."""

DOCUMENTATION = r"""
module: flbed_workdirs
short_description: Make the host directories and config files of many flbed participants
description:
  - Makes, under O(root), one directory per participant with a C(control) and an C(out)
    directory (owned by O(uid):O(gid), mode 0700, so the participant's unprivileged user can
    write there) and writes its C(config.yaml) (mode 0644) with the given text.
  - Does for all participants of a host in one module run what would otherwise take three
    runs of M(ansible.builtin.file) and M(ansible.builtin.copy) per participant; on a host that
    carries dozens of participants, Ansible's cost per module run is what takes the time.
  - Directories it has to create, O(root) and its missing parents included, get the owner and
    mode of C(control) and C(out), as M(ansible.builtin.file) gives missing parents; existing
    ones are left as they are.
options:
  root:
    description: The testbed's directory on the host.
    type: path
    required: true
  participants:
    description: One entry per participant.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The participant's name; its directory is C(<root>/<name>).
        type: str
        required: true
      config:
        description: The text of its C(config.yaml).
        type: str
        required: true
  uid:
    description: Owner of the directories the participant writes to.
    type: int
    required: true
  gid:
    description: Group of those directories.
    type: int
    required: true
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
notes:
  - Only makes and updates; the testbed's teardown removes O(root) as a whole.
"""

EXAMPLES = r"""
- name: Make the participants' directories and configs
  flbed_workdirs:
    root: /var/lib/flbed/demo
    uid: 10001
    gid: 10001
    participants:
      - {name: server, config: "federate: {mode: distributed}\n"}
      - {name: client-1, config: "federate: {mode: distributed}\n"}
"""

RETURN = r"""
changes:
  description: What was (or in check mode would be) done, one entry per path, each with
    C(path) and C(action) (C(create directory), C(set owner and mode), C(write config)).
  returned: always
  type: list
  elements: dict
"""

import os
import stat

from ansible.module_utils.basic import AnsibleModule

PRIVATE_DIR_MODE = 0o700
CONFIG_MODE = 0o644
CONFIG_NAME = "config.yaml"
WRITABLE_DIRS = ("control", "out")


def argument_spec():
    return dict(
        root=dict(type="path", required=True),
        participants=dict(type="list", elements="dict", required=True, options=dict(
            name=dict(type="str", required=True),
            config=dict(type="str", required=True))),
        uid=dict(type="int", required=True),
        gid=dict(type="int", required=True),
    )


def directory_state(path):
    """How a directory is now, in the words of the diff: absent, or its owner and mode."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return "absent"
    if not stat.S_ISDIR(info.st_mode):
        raise ValueError("%s exists and is not a directory" % path)
    return "owner %d:%d mode %04o" % (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode))


def read_text(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def config_state(path):
    """A config file's text, or None when it is missing or its mode is not 0644."""
    text = read_text(path)
    if text is None or stat.S_IMODE(os.stat(path).st_mode) != CONFIG_MODE:
        return None
    return text


class Plan:
    """The changes that make every participant's directories and config as wanted, with
    the diff of each changed path (before and after)."""

    def __init__(self, uid, gid):
        self.wanted_dir = "owner %d:%d mode %04o" % (uid, gid, PRIVATE_DIR_MODE)
        self.changes = []
        self.diff = {"before": {}, "after": {}}

    def _add(self, path, action, before, after):
        self.changes.append({"path": path, "action": action})
        self.diff["before"][path] = before
        self.diff["after"][path] = after

    def missing_directories(self, path):
        """PATH and those of its parents that are missing, outermost first."""
        missing = []
        while path not in self.diff["after"] and not os.path.exists(path):
            missing.insert(0, path)
            path = os.path.dirname(path)
        for folder in missing:
            self._add(folder, "create directory", "absent", self.wanted_dir)

    def writable_directory(self, path):
        before = directory_state(path)
        if before == "absent":
            self._add(path, "create directory", before, self.wanted_dir)
        elif before != self.wanted_dir:
            self._add(path, "set owner and mode", before, self.wanted_dir)

    def config(self, path, text):
        before = config_state(path)
        if before != text:
            self._add(path, "write config", read_text(path) or "", text)


def plan(root, participants, uid, gid):
    """The Plan of ROOT's directories and every participant's."""
    wanted = Plan(uid, gid)
    wanted.missing_directories(root)
    for participant in participants:
        folder = os.path.join(root, participant["name"])
        wanted.missing_directories(folder)
        for sub in WRITABLE_DIRS:
            wanted.writable_directory(os.path.join(folder, sub))
        wanted.config(os.path.join(folder, CONFIG_NAME), participant["config"])
    return wanted


def write_config(path, text):
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path + ".tmp", CONFIG_MODE)
    os.replace(path + ".tmp", path)


def apply(changes, participants, uid, gid):
    configs = {participant["name"]: participant["config"] for participant in participants}
    for change in changes:
        path = change["path"]
        if change["action"] == "write config":
            write_config(path, configs[os.path.basename(os.path.dirname(path))])
            continue
        if change["action"] == "create directory":
            os.mkdir(path)
        os.chown(path, uid, gid)
        os.chmod(path, PRIVATE_DIR_MODE)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    try:
        wanted = plan(params["root"], params["participants"], params["uid"], params["gid"])
        if wanted.changes and not module.check_mode:
            apply(wanted.changes, params["participants"], params["uid"], params["gid"])
    except (OSError, ValueError) as error:
        module.fail_json(msg="cannot make the participants' directories under %s: %s"
                             % (params["root"], error))
    extra = {"diff": wanted.diff} if module._diff else {}
    module.exit_json(changed=bool(wanted.changes), changes=wanted.changes, **extra)


if __name__ == "__main__":
    main()
