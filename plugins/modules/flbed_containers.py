#!/usr/bin/python
"""Ansible module: create and start every participant container of a host in one run."""

DOCUMENTATION = r"""
module: flbed_containers
short_description: Create and start the participant containers of one flbed host
description:
  - Makes each participant's container run as the testbed wants it, created from the image
    with the participant's command, labels, memory and CPU limits and environment, on the
    testbed's network, as an unprivileged user without capabilities on a read-only root, with
    its config, control and output directories bind-mounted from O(workdir); then started.
  - Does for all participants of a host in one module run what one run of
    M(community.docker.docker_container) per participant did; on a host that carries dozens
    of participants, Ansible's cost per module run is what took the time.
  - The wanted create request is hashed into the label C(flbed.config). A container whose
    label or image differs from the wanted one, whose CPU quota differs from a wanted
    quota, or that is not running, is removed and created again (a stopped participant's
    entry point is not restarted, so that a new container starts from a clean state). One that
    matches is left alone.
  - Talks to the Docker Engine API on its unix socket with the Python standard library only.
options:
  testbed:
    description: The testbed's name, for the label C(flbed.testbed). A container of a
      participant's name that carries another testbed's label (or none) is not touched; the
      module fails and names it.
    type: str
    required: true
  image:
    description: Reference of the participant image, which must be on the host already.
    type: str
    required: true
  network:
    description: The testbed's Docker network, given as the containers' network mode only.
      On a swarm worker an overlay network is not known locally until a container uses it;
      named this way, the engine resolves it with the swarm's manager.
    type: str
    required: true
  workdir:
    description: Host directory of the testbed; participant C(name) mounts
      C(<workdir>/<name>/config.yaml) read-only at C(/flbed/config.yaml), and
      C(<workdir>/<name>/control) and C(<workdir>/<name>/out) at C(/flbed/control) and
      C(/flbed/out).
    type: path
    required: true
  uid:
    description: User id the participant runs as inside its container.
    type: int
    required: true
  gid:
    description: Group id the participant runs as.
    type: int
    required: true
  participants:
    description: One entry per participant of this host.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The participant's name, for the label C(flbed.participant).
        type: str
        required: true
      container:
        description: The container's name, also its hostname.
        type: str
        required: true
      role:
        description: C(server) or C(client), for the label C(flbed.role).
        type: str
        required: true
      profile:
        description: The device profile, for the label C(flbed.profile).
        type: str
        required: true
      command:
        description: Arguments to the image's entry point.
        type: list
        elements: str
        required: true
      memory_bytes:
        description: Memory limit, also the limit of memory plus swap (no swap).
        type: int
        required: true
      cpus:
        description: CPU quota in host cores, set at creation; 0 sets none.
        type: float
        default: 0
      env:
        description: Environment variables; C(HOME) is always C(/tmp).
        type: dict
        default: {}
  tmp_size:
    description: Size of the tmpfs mounted at C(/tmp), in Docker's units.
    type: str
    default: 256m
  workers:
    description: How many participants are created and started at once. The engine does
      part of each creation and start while the next request is sent; on 2 cores, four at
      a time took two thirds of the time of one at a time.
    type: int
    default: 4
  docker_socket:
    description: Path of the Docker engine's unix socket.
    type: path
    default: /var/run/docker.sock
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Per participant, before and after, its state, image, config hash, command,
      labels, limits and network.
  idempotent:
    support: full
notes:
  - Only creates and starts; the testbed's teardown removes its containers by label.
    Containers of the testbed that are not among O(participants) are left as they are.
  - A quota that M(flbed_cpu_quota) set after the start is not undone when O(cpus) is 0,
    and a memory limit changed in place (C(docker update)) is not noticed.
"""

EXAMPLES = r"""
- name: Start the participants of this host
  flbed_containers:
    testbed: demo
    image: flbed/participant:0123abcd
    network: flbed-demo
    workdir: /var/lib/flbed/demo
    uid: 10001
    gid: 10001
    participants:
      - name: server
        container: flbed-demo-server
        role: server
        profile: edge_server
        command: [--cfg, /flbed/config.yaml, --listen, "0.0.0.0:50051"]
        memory_bytes: 1073741824
"""

RETURN = r"""
participants:
  description: One entry per participant, in the given order, with C(name), C(container),
    C(action) (C(none), C(create) or C(recreate)), C(reasons) for the action, C(done) (the
    steps taken, from C(removed), C(created), C(started); empty in check mode), C(id) of the
    container once created, and C(error) when a step failed.
  returned: always
  type: list
  elements: dict
"""

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.flbed_docker import DockerAPI, DockerError

NANO_PER_CPU = 10**9
CONFIG_LABEL = "flbed.config"
TESTBED_LABEL = "flbed.testbed"
# The labels a participant's container is given; the image adds its own flbed.* labels.
PARTICIPANT_LABELS = (TESTBED_LABEL, "flbed.participant", "flbed.role", "flbed.profile")
CONFIG_TARGET = "/flbed/config.yaml"
CONTROL_TARGET = "/flbed/control"
OUT_TARGET = "/flbed/out"
# The engine's calls can queue behind each other on a loaded host; 30 s was not always enough
# for a start that sets up a network endpoint.
ENGINE_TIMEOUT_S = 120.0


def argument_spec():
    return dict(
        testbed=dict(type="str", required=True),
        image=dict(type="str", required=True),
        network=dict(type="str", required=True),
        workdir=dict(type="path", required=True),
        uid=dict(type="int", required=True),
        gid=dict(type="int", required=True),
        participants=dict(type="list", elements="dict", required=True, options=dict(
            name=dict(type="str", required=True),
            container=dict(type="str", required=True),
            role=dict(type="str", required=True),
            profile=dict(type="str", required=True),
            command=dict(type="list", elements="str", required=True),
            memory_bytes=dict(type="int", required=True),
            cpus=dict(type="float", default=0),
            env=dict(type="dict", default={}))),
        tmp_size=dict(type="str", default="256m"),
        workers=dict(type="int", default=4),
        docker_socket=dict(type="path", default="/var/run/docker.sock"),
    )


def check_params(params):
    """The problems the argument spec cannot see, one line each."""
    problems = []
    if params["workers"] < 1:
        problems.append("workers: %d is not allowed; use 1 or more" % params["workers"])
    for entry in params["participants"]:
        if entry["memory_bytes"] <= 0:
            problems.append("participant %r: memory_bytes %d is not allowed; use more than 0"
                            % (entry["name"], entry["memory_bytes"]))
        if entry["cpus"] < 0:
            problems.append("participant %r: cpus %s is not allowed; use 0 (no quota) or more"
                            % (entry["name"], entry["cpus"]))
    names = [entry["container"] for entry in params["participants"]]
    for name in sorted({name for name in names if names.count(name) > 1}):
        problems.append("container %r is named by more than one participant" % name)
    return problems


def bind_mount(source, target, read_only=False):
    return {"Type": "bind", "Source": source, "Target": target, "ReadOnly": read_only}


def create_body(params, participant):
    """The Engine API create request of one participant's container, without its
    flbed.config label (config_hash is taken of this body)."""
    folder = "%s/%s" % (params["workdir"].rstrip("/"), participant["name"])
    env = dict(participant["env"] or {}, HOME="/tmp")
    host_config = {
        "NetworkMode": params["network"],
        "Memory": participant["memory_bytes"],
        "MemorySwap": participant["memory_bytes"],
        "CapDrop": ["ALL"],
        "SecurityOpt": ["no-new-privileges"],
        "ReadonlyRootfs": True,
        "Tmpfs": {"/tmp": "size=%s" % params["tmp_size"]},
        "Mounts": [bind_mount(folder + "/config.yaml", CONFIG_TARGET, read_only=True),
                   bind_mount(folder + "/control", CONTROL_TARGET),
                   bind_mount(folder + "/out", OUT_TARGET)],
        "RestartPolicy": {"Name": "no"},
    }
    if participant["cpus"]:
        host_config["NanoCpus"] = int(round(participant["cpus"] * NANO_PER_CPU))
    return {
        "Hostname": participant["container"],
        "Image": params["image"],
        "Cmd": list(participant["command"]),
        "User": "%d:%d" % (params["uid"], params["gid"]),
        "Env": ["%s=%s" % (key, env[key]) for key in sorted(env)],
        "Labels": {TESTBED_LABEL: params["testbed"],
                   "flbed.participant": participant["name"],
                   "flbed.role": participant["role"],
                   "flbed.profile": participant["profile"]},
        "HostConfig": host_config,
    }


def config_hash(body):
    """A digest of the create body that changes with any of its settings."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def labelled(body):
    """The create body with its config hash among the labels: what is sent."""
    sent = dict(body, Labels=dict(body["Labels"]))
    sent["Labels"][CONFIG_LABEL] = config_hash(body)
    return sent


def settings_of_body(body, image_id):
    """What the diff shows of a wanted container."""
    host_config = body["HostConfig"]
    return {"state": "running", "image": body["Image"], "image_id": image_id,
            "config": body["Labels"][CONFIG_LABEL], "command": body["Cmd"],
            "labels": {k: v for k, v in body["Labels"].items() if k != CONFIG_LABEL},
            "memory_bytes": host_config["Memory"],
            "memory_swap_bytes": host_config["MemorySwap"],
            "cpus": host_config.get("NanoCpus", 0) / NANO_PER_CPU,
            "network": host_config["NetworkMode"]}


def settings_of_container(info):
    """The same view of an existing container, from its inspect data."""
    if info is None:
        return {"state": "absent"}
    config, host_config = info.get("Config") or {}, info.get("HostConfig") or {}
    labels = config.get("Labels") or {}
    return {"state": (info.get("State") or {}).get("Status", "unknown"),
            "image": config.get("Image"), "image_id": info.get("Image"),
            "config": labels.get(CONFIG_LABEL), "command": config.get("Cmd"),
            "labels": {key: labels.get(key) for key in PARTICIPANT_LABELS},
            "memory_bytes": host_config.get("Memory"),
            "memory_swap_bytes": host_config.get("MemorySwap"),
            "cpus": (host_config.get("NanoCpus") or 0) / NANO_PER_CPU,
            "network": host_config.get("NetworkMode")}


def foreign_owner(info, testbed):
    """Why an existing container is not this testbed's to replace, or None when it is."""
    owner = ((info.get("Config") or {}).get("Labels") or {}).get(TESTBED_LABEL)
    if owner == testbed:
        return None
    if owner is None:
        return "it carries no %s label" % TESTBED_LABEL
    return "it belongs to testbed %r" % owner


def reasons_to_recreate(wanted, actual):
    """Why an existing container (settings_of_container) is not the wanted one
    (settings_of_body); empty when it is.

    The config hash covers every setting of the create request. Of the limits an engine can
    change in place, only the CPU quota is compared, since flbed_cpu_quota changes it; and
    only when one is wanted, as without one flbed_cpu_quota sets it once the participant
    listens. Memory is not compared: an engine without the memory cgroup (a Raspberry Pi's
    default) drops the limit, which would make every provision recreate the container."""
    reasons = []
    if actual["config"] != wanted["config"]:
        reasons.append("its settings differ (config %s, wanted %s)"
                       % ((actual["config"] or "none")[:12], wanted["config"][:12]))
    if actual["image_id"] != wanted["image_id"]:
        reasons.append("it runs image %s, wanted %s (%s)"
                       % (actual["image_id"], wanted["image_id"], wanted["image"]))
    if wanted["cpus"] and actual["cpus"] != wanted["cpus"]:
        reasons.append("its cpus are %s, wanted %s" % (actual["cpus"], wanted["cpus"]))
    if actual["state"] != "running":
        reasons.append("it is %s" % actual["state"])
    return reasons


def decide(wanted, actual):
    """The action that makes the container as wanted, and why: ("none", []),
    ("create", [...]) or ("recreate", [...])."""
    if actual["state"] == "absent":
        return "create", ["it does not exist"]
    reasons = reasons_to_recreate(wanted, actual)
    return ("recreate" if reasons else "none"), reasons


class ContainerManager:
    """Compares every participant's container with the wanted one and, outside check mode,
    removes, creates and starts what differs."""

    def __init__(self, module, api):
        self.module = module
        self.api = api
        self.params = module.params
        self.results = []
        self.diff = {"before": {}, "after": {}}
        self.warnings = set()

    def image_id(self):
        image = self.api.inspect_image(self.params["image"])
        if image is None:
            self.module.fail_json(msg="image %r is not on this host; the participant image "
                                      "is built or loaded before its containers start"
                                      % self.params["image"])
        return image["Id"]

    def plan(self, image_id):
        """One (participant, body, result) per participant, in the given order."""
        planned = []
        for participant in self.params["participants"]:
            body = labelled(create_body(self.params, participant))
            info = self.api.inspect_container(participant["container"])
            if info is not None and foreign_owner(info, self.params["testbed"]):
                self.module.fail_json(
                    msg="cannot start participant %r: a container named %r exists and %s; "
                        "it is left as it is" % (participant["name"], participant["container"],
                                                 foreign_owner(info, self.params["testbed"])),
                    participants=self.results)
            wanted = settings_of_body(body, image_id)
            actual = settings_of_container(info)
            action, reasons = decide(wanted, actual)
            result = {"name": participant["name"], "container": participant["container"],
                      "action": action, "reasons": reasons, "done": [],
                      "id": info["Id"] if info else None}
            self.results.append(result)
            self.diff["before"][participant["name"]] = actual
            self.diff["after"][participant["name"]] = wanted
            planned.append((participant, body, result))
        return planned

    def make(self, participant, body, result):
        """Remove (when recreating), create and start one container, recording each step
        done; an engine error is kept in the result, naming the participant."""
        try:
            if result["action"] == "recreate":
                self.api.remove_container(result["id"])
                result["done"].append("removed")
                result["id"] = None
            created = self.api.create_container(participant["container"], body)
            result["id"] = created.get("Id")
            result["done"].append("created")
            self.warnings.update(created.get("Warnings") or [])
            self.api.start_container(result["id"])
            result["done"].append("started")
        except DockerError as error:
            result["error"] = str(error)

    def apply(self, planned):
        """Carry out the changing entries, at most `workers` at a time (one at a time, in
        order, with 1); once one has failed, no further participant is begun."""
        failed = []

        def guarded(entry):
            if not failed:
                self.make(*entry)
                if "error" in entry[2]:
                    failed.append(entry[2]["name"])

        pending = [entry for entry in planned if entry[2]["action"] != "none"]
        with ThreadPoolExecutor(max_workers=self.params["workers"]) as pool:
            list(pool.map(guarded, pending))

    def failure_message(self):
        failed = [r for r in self.results if "error" in r]
        if not failed:
            return None
        first = failed[0]
        done = ", ".join(first["done"]) or "nothing"
        text = "cannot start participant %r (container %r; done: %s): %s" % (
            first["name"], first["container"], done, first["error"])
        others = [r["name"] for r in failed[1:]]
        if others:
            text += "; also failed: %s" % ", ".join(others)
        untouched = [r["name"] for r in self.results
                     if r["action"] != "none" and not r["done"] and "error" not in r]
        if untouched:
            text += "; not begun: %s" % ", ".join(untouched)
        return text


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    problems = check_params(module.params)
    if problems:
        module.fail_json(msg="; ".join(problems))

    api = DockerAPI(socket_path=module.params["docker_socket"], timeout_s=ENGINE_TIMEOUT_S)
    manager = ContainerManager(module, api)
    try:
        planned = manager.plan(manager.image_id())
    except DockerError as error:
        module.fail_json(msg="cannot read the participants' containers: %s" % error,
                         participants=manager.results)
    if not module.check_mode:
        manager.apply(planned)

    for warning in sorted(manager.warnings):
        module.warn("Docker engine: %s" % warning)
    changed = any(result["action"] != "none" for result in manager.results)
    extra = {"diff": manager.diff} if module._diff else {}
    failure = manager.failure_message()
    if failure:
        module.fail_json(msg=failure, changed=any(r["done"] for r in manager.results),
                         participants=manager.results, **extra)
    module.exit_json(changed=changed, participants=manager.results, **extra)


if __name__ == "__main__":
    main()
