"""flbed_containers: the create request, what decides a recreate, check mode, failures and
the engine calls the client sends. The engine is a test double here; the integration tests
(test_local_run, test_idempotence) run the module against the real one."""

import copy
import sys

import pytest
import yaml

from tests.conftest import REPO, load_module

sys.path.insert(0, str(REPO / "plugins" / "module_utils"))

import flbed_docker  # noqa: E402

IMAGE_ID = "sha256:" + "a" * 64
PARAMS = {
    "testbed": "demo", "image": "flbed/participant:0123", "network": "flbed-demo",
    "workdir": "/var/lib/flbed/demo/", "uid": 10001, "gid": 10002, "tmp_size": "256m",
    "workers": 1, "docker_socket": "/var/run/docker.sock",
    "participants": [
        {"name": "server", "container": "flbed-demo-server", "role": "server",
         "profile": "edge_server", "command": ["--listen", "flbed-demo-server:50051"],
         "memory_bytes": 1 << 30, "cpus": 0.5, "env": {}},
        {"name": "client-1", "container": "flbed-demo-client-1", "role": "client",
         "profile": "iot_minimal", "command": ["--listen", "flbed-demo-client-1:50052"],
         "memory_bytes": 256 << 20, "cpus": 0, "env": {"B": "2", "A": "1", "HOME": "/root"}},
    ],
}


@pytest.fixture
def containers(monkeypatch):
    return load_module(monkeypatch, "plugins/modules/flbed_containers.py",
                       utils=["flbed_docker"])


class ModuleExit(Exception):
    def __init__(self, result):
        super().__init__(result.get("msg"))
        self.result = result


class FakeModule:
    """The parts of AnsibleModule the manager uses; fail_json ends the run as Ansible's does."""

    def __init__(self, params, check_mode=False):
        self.params = params
        self.check_mode = check_mode

    def fail_json(self, **result):
        raise ModuleExit(result)


class FakeEngine:
    """A test double of DockerAPI: containers by name as an engine would inspect them, every
    changing call recorded, and an error for the calls named in `fail_on`."""

    def __init__(self, containers=None, image_id=IMAGE_ID, fail_on=()):
        self.containers = containers or {}
        self.image_id = image_id
        self.fail_on = set(fail_on)
        self.calls = []

    def inspect_image(self, reference):
        return None if self.image_id is None else {"Id": self.image_id}

    def inspect_container(self, name):
        return copy.deepcopy(self.containers.get(name))

    def _record(self, call, target):
        self.calls.append((call, target))
        if (call, target) in self.fail_on:
            raise flbed_docker.DockerError(
                "Docker engine answered 500 to POST /containers/%s: no space left" % target,
                status=500)

    def remove_container(self, name_or_id):
        self._record("remove", name_or_id)

    def create_container(self, name, body):
        self._record("create", name)
        return {"Id": "id-" + name, "Warnings": []}

    def start_container(self, name_or_id):
        self._record("start", name_or_id)


def inspected(module, params, participant, status="running", image_id=IMAGE_ID):
    """What the engine shows of a container created from the module's own request."""
    body = module.labelled(module.create_body(params, participant))
    host_config = dict(body["HostConfig"], NanoCpus=body["HostConfig"].get("NanoCpus", 0))
    labels = dict(body["Labels"], **{"flbed.image": "participant"})  # the image's own
    return {"Id": "old-" + participant["container"], "Image": image_id,
            "Config": dict(body, Labels=labels, Env=body["Env"] + ["PATH=/usr/bin"]),
            "HostConfig": host_config, "State": {"Status": status}}


def run(module, params, engine, check_mode=False):
    manager = module.ContainerManager(FakeModule(params, check_mode), engine)
    planned = manager.plan(manager.image_id())
    if not check_mode:
        manager.apply(planned)
    return manager


def all_in_place(module, params=PARAMS, **changes):
    return {p["container"]: inspected(module, params, p, **changes)
            for p in params["participants"]}


# The create request.

def test_the_request_carries_every_setting_of_a_participant(containers):
    body = containers.create_body(PARAMS, PARAMS["participants"][0])
    host_config = body["HostConfig"]

    assert body["Hostname"] == "flbed-demo-server"
    assert body["Image"] == "flbed/participant:0123"
    assert body["Cmd"] == ["--listen", "flbed-demo-server:50051"]
    assert body["User"] == "10001:10002"
    assert body["Labels"] == {"flbed.testbed": "demo", "flbed.participant": "server",
                              "flbed.role": "server", "flbed.profile": "edge_server"}
    assert host_config["NetworkMode"] == "flbed-demo"
    assert "NetworkingConfig" not in body
    assert host_config["Memory"] == host_config["MemorySwap"] == 1 << 30
    assert host_config["NanoCpus"] == 500_000_000
    assert host_config["CapDrop"] == ["ALL"]
    assert host_config["SecurityOpt"] == ["no-new-privileges"]
    assert host_config["ReadonlyRootfs"] is True
    assert host_config["Tmpfs"] == {"/tmp": "size=256m"}
    assert host_config["RestartPolicy"] == {"Name": "no"}
    assert host_config["Mounts"] == [
        {"Type": "bind", "Source": "/var/lib/flbed/demo/server/config.yaml",
         "Target": "/flbed/config.yaml", "ReadOnly": True},
        {"Type": "bind", "Source": "/var/lib/flbed/demo/server/control",
         "Target": "/flbed/control", "ReadOnly": False},
        {"Type": "bind", "Source": "/var/lib/flbed/demo/server/out",
         "Target": "/flbed/out", "ReadOnly": False}]


def test_no_quota_is_sent_without_cpus_and_home_is_always_tmp(containers):
    body = containers.create_body(PARAMS, PARAMS["participants"][1])
    assert "NanoCpus" not in body["HostConfig"]
    assert body["Env"] == ["A=1", "B=2", "HOME=/tmp"]


def test_the_hash_label_follows_every_setting_and_nothing_else(containers):
    participant = PARAMS["participants"][0]
    first = containers.labelled(containers.create_body(PARAMS, participant))
    again = containers.labelled(containers.create_body(copy.deepcopy(PARAMS), participant))
    assert first == again
    assert len(first["Labels"]["flbed.config"]) == 64

    variants = [dict(participant, memory_bytes=2 << 30), dict(participant, cpus=1.0),
                dict(participant, env={"X": "1"}), dict(participant, profile="other"),
                dict(participant, command=["--listen", "elsewhere:1"])]
    hashes = {containers.config_hash(containers.create_body(PARAMS, v)) for v in variants}
    hashes |= {containers.config_hash(containers.create_body(dict(PARAMS, **change),
                                                             participant))
               for change in ({"image": "flbed/participant:4567"}, {"network": "other"},
                              {"tmp_size": "64m"}, {"uid": 0})}
    assert len(hashes) == 9 and first["Labels"]["flbed.config"] not in hashes


# What decides an action.

def test_containers_as_wanted_are_left_alone(containers):
    engine = FakeEngine(all_in_place(containers))
    manager = run(containers, PARAMS, engine)

    assert engine.calls == []
    assert [r["action"] for r in manager.results] == ["none", "none"]
    assert manager.diff["before"] == manager.diff["after"]


def test_a_missing_container_is_created_and_started(containers):
    engine = FakeEngine()
    manager = run(containers, PARAMS, engine)

    assert engine.calls == [("create", "flbed-demo-server"), ("start", "id-flbed-demo-server"),
                            ("create", "flbed-demo-client-1"),
                            ("start", "id-flbed-demo-client-1")]
    assert manager.results[0]["done"] == ["created", "started"]
    assert manager.diff["before"]["server"] == {"state": "absent"}
    assert manager.diff["after"]["server"]["state"] == "running"


@pytest.mark.parametrize("change, reason", [
    ({"status": "exited"}, "it is exited"),
    ({"image_id": "sha256:" + "b" * 64}, "it runs image sha256:bbb"),
])
def test_a_stopped_container_or_one_of_another_image_is_recreated(containers, change, reason):
    engine = FakeEngine(all_in_place(containers, **change))
    manager = run(containers, PARAMS, engine)

    assert [r["action"] for r in manager.results] == ["recreate", "recreate"]
    assert reason in manager.results[0]["reasons"][0]
    assert engine.calls[:3] == [("remove", "old-flbed-demo-server"),
                                ("create", "flbed-demo-server"),
                                ("start", "id-flbed-demo-server")]
    assert manager.results[0]["done"] == ["removed", "created", "started"]


def test_a_changed_setting_recreates_that_participant_alone(containers):
    engine = FakeEngine(all_in_place(containers))
    changed = copy.deepcopy(PARAMS)
    changed["participants"][1]["memory_bytes"] = 512 << 20
    manager = run(containers, changed, engine)

    assert [r["action"] for r in manager.results] == ["none", "recreate"]
    assert "its settings differ" in manager.results[1]["reasons"][0]
    assert manager.diff["before"]["client-1"]["memory_bytes"] == 256 << 20
    assert manager.diff["after"]["client-1"]["memory_bytes"] == 512 << 20
    assert [call for call, _ in engine.calls] == ["remove", "create", "start"]


def test_the_quota_counts_only_when_one_is_wanted(containers):
    in_place = all_in_place(containers)
    for container in in_place.values():  # as flbed_cpu_quota leaves them after launch
        container["HostConfig"]["NanoCpus"] = 150_000_000
    manager = run(containers, PARAMS, FakeEngine(in_place))

    server, client = manager.results
    assert server["action"] == "recreate"
    assert server["reasons"] == ["its cpus are 0.15, wanted 0.5"]
    assert client["action"] == "none"


def test_a_memory_limit_the_engine_dropped_is_no_reason(containers):
    in_place = all_in_place(containers)
    for container in in_place.values():  # an engine without the memory cgroup
        container["HostConfig"]["Memory"] = container["HostConfig"]["MemorySwap"] = 0
    assert [r["action"] for r in run(containers, PARAMS, FakeEngine(in_place)).results] == [
        "none", "none"]


# Check mode, refusals and failures.

def test_check_mode_reports_the_same_actions_and_calls_nothing(containers):
    in_place = all_in_place(containers)
    del in_place["flbed-demo-client-1"]
    in_place["flbed-demo-server"]["State"]["Status"] = "exited"
    checked_engine, real_engine = FakeEngine(copy.deepcopy(in_place)), FakeEngine(in_place)

    checked = run(containers, PARAMS, checked_engine, check_mode=True)
    real = run(containers, PARAMS, real_engine)

    assert checked_engine.calls == []
    assert [r["action"] for r in checked.results] == ["recreate", "create"]
    assert [r["action"] for r in checked.results] == [r["action"] for r in real.results]
    assert all(r["done"] == [] for r in checked.results)
    assert checked.diff == real.diff


def test_a_container_of_another_testbed_is_not_touched(containers):
    in_place = all_in_place(containers)
    in_place["flbed-demo-server"]["Config"]["Labels"]["flbed.testbed"] = "other"
    engine = FakeEngine(in_place)

    with pytest.raises(ModuleExit, match="'flbed-demo-server' exists and it belongs to "
                                         "testbed 'other'"):
        run(containers, PARAMS, engine)
    assert engine.calls == []


def test_a_missing_image_is_named(containers):
    with pytest.raises(ModuleExit, match="image 'flbed/participant:0123' is not on this host"):
        run(containers, PARAMS, FakeEngine(image_id=None))


@pytest.mark.parametrize("workers", [1, 4])
def test_a_failure_names_the_participant_the_engine_error_and_what_was_done(containers,
                                                                            workers):
    engine = FakeEngine(fail_on={("start", "id-flbed-demo-server")})
    params = dict(PARAMS, workers=workers)
    manager = run(containers, params, engine)

    message = manager.failure_message()
    assert message.startswith("cannot start participant 'server' (container "
                              "'flbed-demo-server'; done: created): Docker engine answered "
                              "500")
    assert "no space left" in message
    assert manager.results[0]["id"] == "id-flbed-demo-server"
    if workers == 1:  # nothing begun after the failure, and the message says so
        assert message.endswith("; not begun: client-1")
        assert ("create", "flbed-demo-client-1") not in engine.calls


def test_a_pool_creates_every_participant_once(containers):
    many = copy.deepcopy(PARAMS)
    template = many["participants"][1]
    many["participants"] = [dict(template, name="client-%d" % i,
                                 container="flbed-demo-client-%d" % i) for i in range(20)]
    engine = FakeEngine()
    manager = run(containers, dict(many, workers=4), engine)

    creates = sorted(target for call, target in engine.calls if call == "create")
    assert creates == sorted(p["container"] for p in many["participants"])
    assert all(r["done"] == ["created", "started"] for r in manager.results)
    assert manager.failure_message() is None


def test_bad_parameters_get_one_line_each(containers):
    bad = copy.deepcopy(PARAMS)
    bad["workers"] = 0
    bad["participants"][0]["memory_bytes"] = 0
    bad["participants"][1]["cpus"] = -1
    bad["participants"][1]["container"] = "flbed-demo-server"
    assert containers.check_params(bad) == [
        "workers: 0 is not allowed; use 1 or more",
        "participant 'server': memory_bytes 0 is not allowed; use more than 0",
        "participant 'client-1': cpus -1 is not allowed; use 0 (no quota) or more",
        "container 'flbed-demo-server' is named by more than one participant"]
    assert containers.check_params(PARAMS) == []


def test_documentation_matches_the_argument_spec(containers):
    documented = yaml.safe_load(containers.DOCUMENTATION)["options"]
    spec = containers.argument_spec()
    assert set(documented) == set(spec)
    assert set(documented["participants"]["suboptions"]) == set(
        spec["participants"]["options"])
    for name, option in spec.items():
        assert documented[name]["type"] == option["type"], name
        assert documented[name].get("default") == option.get("default"), name


# The engine calls the client sends.

def test_the_client_sends_create_start_and_remove_as_the_engine_expects(monkeypatch):
    sent = []
    answers = iter([(201, b'{"Id": "abc", "Warnings": []}'), (204, b""), (204, b""),
                    (404, b'{"message": "No such image: x"}'),
                    (409, b'{"message": "Conflict. The container name is already in use"}')])

    def fake_request(self, path, params=None, method="GET", body=None):
        sent.append((method, path, params, body))
        return next(answers)

    monkeypatch.setattr(flbed_docker.DockerAPI, "_request", fake_request)
    api = flbed_docker.DockerAPI()

    assert api.create_container("flbed-demo-server", {"Image": "x"})["Id"] == "abc"
    api.start_container("abc")
    api.remove_container("abc")
    assert api.inspect_image("x") is None
    with pytest.raises(flbed_docker.DockerError, match="409 to POST /containers/create: "
                                                       "Conflict"):
        api.create_container("flbed-demo-server", {"Image": "x"})
    assert sent[:4] == [
        ("POST", "/containers/create", {"name": "flbed-demo-server"}, {"Image": "x"}),
        ("POST", "/containers/abc/start", None, None),
        ("DELETE", "/containers/abc", {"force": "1"}, None),
        ("GET", "/images/x/json", None, None)]
