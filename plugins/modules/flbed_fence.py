#!/usr/bin/python
"""Ansible module: leave running participants a route to their testbed's network and nowhere
else."""

DOCUMENTATION = r"""
module: flbed_fence
short_description: Fence flbed participants in to their testbed's network
description:
  - Changes the IPv4 routes inside each participant container's network namespace, from the
    host (C(nsenter)), so that the participant reaches the other participants on its
    networks' subnets and nothing else. The default route goes, so no address beyond the
    subnets (the LAN, the Internet, the host's own addresses) has a route; and each network's
    gateway, which is an address of the host on a bridge network, gets a C(prohibit) route, so
    the host's services are out of reach too. Docker's name service at C(127.0.0.11) lives in
    the namespace and keeps working.
  - Participants run without capabilities, so they cannot change their routes back. The
    routes go with the namespace when the container stops, so teardown has nothing to undo.
  - One module run serves all participants of a host, so a host that carries dozens of them
    pays Ansible's cost per module run once.
options:
  participants:
    description: One entry per participant.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The participant's name, for messages and results.
        type: str
        required: true
      container:
        description: Its container's name.
        type: str
        required: true
  docker_socket:
    description: The Docker engine's unix socket.
    type: path
    default: /var/run/docker.sock
attributes:
  check_mode:
    support: full
    details: A container that is not running yet (a check run starts none) would be fenced.
  diff_mode:
    support: full
  idempotent:
    support: full
notes:
  - Needs root on the managed host, C(nsenter) and C(ip) (iproute2).
  - IPv6 is left alone, since Docker disables it in containers on networks without IPv6.
"""

EXAMPLES = r"""
- name: Fence each participant in to its testbed's network
  flbed_fence:
    participants:
      - {name: server, container: flbed-demo-server}
      - {name: client-1, container: flbed-demo-client-1}
"""

RETURN = r"""
participants:
  description: One entry per participant with C(name), C(container), C(gateways) (the
    addresses given a prohibit route), C(changed) and C(commands) (the C(ip) commands run, or
    in check mode to be run, inside its namespace).
  returned: always
  type: list
  elements: dict
"""

import subprocess

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.flbed_docker import DockerAPI, DockerError


def gateways_of(info):
    """The gateway address of each network the container is on, as Docker reports them."""
    networks = ((info or {}).get("NetworkSettings") or {}).get("Networks") or {}
    return sorted({net["Gateway"] for net in networks.values() if net.get("Gateway")})


def parse_routes(text):
    """`ip -4 route show` output as (kind, destination) pairs: ("default", None) for a default
    route, ("prohibit", "10.0.0.1") for a prohibit route, ("other", line) for the rest."""
    routes = []
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "default":
            routes.append(("default", None))
        elif words[0] == "prohibit" and len(words) > 1:
            routes.append(("prohibit", words[1].split("/")[0]))
        else:
            routes.append(("other", line.strip()))
    return routes


def fence_commands(routes, gateways):
    """The `ip -batch` lines that leave only the subnets routed; [] when already so."""
    commands = ["route del default" for kind, _ in routes if kind == "default"]
    prohibited = {dest for kind, dest in routes if kind == "prohibit"}
    commands += ["route add prohibit %s/32" % gw for gw in gateways if gw not in prohibited]
    return commands


def describe(routes):
    return "\n".join("default" if kind == "default" else
                     "prohibit %s" % dest if kind == "prohibit" else dest
                     for kind, dest in routes) + "\n"


class Fence:
    def __init__(self, module, api):
        self.module = module
        self.api = api
        self.results = []
        self.diff = {"before": "", "after": ""}

    def run(self, pid, argv, stdin=None):
        done = subprocess.run(["nsenter", "-t", str(pid), "-n"] + argv, input=stdin,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError("`%s` failed: %s" % (" ".join(argv),
                                                    (done.stderr or done.stdout).strip()))
        return done.stdout

    def fence(self, participant):
        name, container = participant["name"], participant["container"]
        info = self.api.inspect_container(container)
        state = (info or {}).get("State") or {}
        if not (state.get("Running") and state.get("Pid")):
            if self.module.check_mode:
                self.results.append({"name": name, "container": container, "gateways": [],
                                     "changed": True, "commands": ["(once it runs)"]})
                return
            raise RuntimeError("its container %r is not running (%s)"
                               % (container, state.get("Status", "it does not exist")))
        pid, gateways = state["Pid"], gateways_of(info)
        routes = parse_routes(self.run(pid, ["ip", "-4", "route", "show"]))
        commands = fence_commands(routes, gateways)
        if commands and not self.module.check_mode:
            self.run(pid, ["ip", "-4", "-batch", "-"], stdin="\n".join(commands) + "\n")
        after = [r for r in routes if r[0] != "default"] + \
            [("prohibit", gw) for gw in gateways if ("prohibit", gw) not in routes]
        self.diff["before"] += "# %s\n%s" % (name, describe(routes))
        self.diff["after"] += "# %s\n%s" % (name, describe(after))
        self.results.append({"name": name, "container": container, "gateways": gateways,
                             "changed": bool(commands), "commands": commands})

    def fence_all(self):
        for participant in self.module.params["participants"]:
            try:
                self.fence(participant)
            except (DockerError, OSError, RuntimeError) as error:
                self.module.fail_json(msg="cannot fence participant %r in to its network: %s"
                                          % (participant["name"], error),
                                      participants=self.results)
        return any(entry["changed"] for entry in self.results)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            participants=dict(type="list", elements="dict", required=True, options=dict(
                name=dict(type="str", required=True),
                container=dict(type="str", required=True))),
            docker_socket=dict(type="path", default="/var/run/docker.sock"),
        ),
        supports_check_mode=True,
    )
    fence = Fence(module, DockerAPI(socket_path=module.params["docker_socket"]))
    changed = fence.fence_all()
    extra = {"diff": fence.diff} if module._diff else {}
    module.exit_json(changed=changed, participants=fence.results, **extra)


if __name__ == "__main__":
    main()
