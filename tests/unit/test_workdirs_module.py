"""flbed_workdirs: the plan of directories and configs, applying it, and its documentation."""

import ast
import importlib.util
import os
import stat

import pytest
import yaml

from tests.conftest import REPO

MODULE_PATH = REPO / "plugins" / "modules" / "flbed_workdirs.py"
UID, GID = 10001, 10002
PARTICIPANTS = [{"name": "server", "config": "role: server\n"},
                {"name": "client-1", "config": "role: client\n"}]


@pytest.fixture
def workdirs():
    spec = importlib.util.spec_from_file_location("flbed_workdirs_for_tests", MODULE_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def as_root():
    if os.geteuid() != 0:
        pytest.skip("changing a directory's owner needs root")


def owner_and_mode(path):
    info = os.stat(path)
    return info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)


def test_a_fresh_root_plans_every_directory_and_config_once(workdirs, tmp_path):
    root = str(tmp_path / "lib" / "flbed" / "demo")
    wanted = workdirs.plan(root, PARTICIPANTS, UID, GID)

    paths = [change["path"] for change in wanted.changes]
    assert len(paths) == len(set(paths))
    assert paths[:3] == [str(tmp_path / "lib"), str(tmp_path / "lib" / "flbed"), root]
    assert [c["action"] for c in wanted.changes if c["path"].endswith("config.yaml")] == [
        "write config", "write config"]
    assert wanted.diff["after"][os.path.join(root, "server", "config.yaml")] == "role: server\n"
    assert wanted.diff["before"][os.path.join(root, "client-1", "out")] == "absent"
    assert not os.path.exists(root), "planning must change nothing"


def test_applied_once_nothing_is_left_to_do(workdirs, tmp_path, as_root):
    root = str(tmp_path / "demo")
    workdirs.apply(workdirs.plan(root, PARTICIPANTS, UID, GID).changes, PARTICIPANTS, UID, GID)

    for participant in PARTICIPANTS:
        folder = os.path.join(root, participant["name"])
        assert owner_and_mode(os.path.join(folder, "control")) == (UID, GID, 0o700)
        assert owner_and_mode(os.path.join(folder, "out")) == (UID, GID, 0o700)
        config = os.path.join(folder, "config.yaml")
        assert open(config).read() == participant["config"]
        assert stat.S_IMODE(os.stat(config).st_mode) == 0o644
    assert workdirs.plan(root, PARTICIPANTS, UID, GID).changes == []


def test_only_what_differs_is_planned(workdirs, tmp_path, as_root):
    root = str(tmp_path / "demo")
    workdirs.apply(workdirs.plan(root, PARTICIPANTS, UID, GID).changes, PARTICIPANTS, UID, GID)
    os.chmod(os.path.join(root, "server", "out"), 0o755)
    edited = [dict(PARTICIPANTS[0]), dict(PARTICIPANTS[1], config="role: client\nx: 1\n")]

    wanted = workdirs.plan(root, edited, UID, GID)
    assert wanted.changes == [
        {"path": os.path.join(root, "server", "out"), "action": "set owner and mode"},
        {"path": os.path.join(root, "client-1", "config.yaml"), "action": "write config"}]
    assert wanted.diff["before"][os.path.join(root, "client-1", "config.yaml")] == \
        "role: client\n"
    workdirs.apply(wanted.changes, edited, UID, GID)
    assert workdirs.plan(root, edited, UID, GID).changes == []


def test_a_file_where_a_directory_belongs_is_an_error(workdirs, tmp_path):
    root = tmp_path / "demo"
    (root / "server").mkdir(parents=True)
    (root / "server" / "control").write_text("not a directory")
    with pytest.raises(ValueError, match="control exists and is not a directory"):
        workdirs.plan(str(root), PARTICIPANTS, UID, GID)


def test_documented_options_are_the_argument_spec(workdirs):
    tree = ast.parse(MODULE_PATH.read_text())
    docs = {node.targets[0].id: node.value.value for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)}
    documented = yaml.safe_load(docs["DOCUMENTATION"])
    spec = workdirs.argument_spec()
    assert set(documented["options"]) == set(spec)
    for name, option in documented["options"].items():
        assert option["type"] == spec[name]["type"], name
        assert option.get("required", False) == spec[name].get("required", False), name
    assert set(documented["options"]["participants"]["suboptions"]) == set(
        spec["participants"]["options"])
    assert set(documented["attributes"]) == {"check_mode", "diff_mode", "idempotent"}
    yaml.safe_load(docs["EXAMPLES"])
    yaml.safe_load(docs["RETURN"])
