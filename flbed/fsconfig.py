"""Render each participant's FederatedScope configuration.

The testbed's ``federatedscope.config`` holds the experiment (data, model, rounds, ...); flbed
adds the keys that make it a distributed run with this testbed's participants. Those keys are
flbed's alone: a file that sets one of them is refused, since the run would silently differ
from it.
"""

import copy

# Where the participant image expects its files (see docker/participant.py).
CONFIG_PATH = "/flbed/config.yaml"
OUTPUT_DIR = "/flbed/out"
EXPERIMENT_NAME = "flbed"
GRPC_PORT = 50051
# FederatedScope's own default, used to show progress when the file does not set it.
FS_DEFAULT_ROUNDS = 50

OWNED_KEYS = {
    "use_gpu": "flbed's participants have no GPU",
    "outdir": "flbed collects results from its own output directory",
    "expname": "flbed collects results from its own output directory",
    "federate.mode": "flbed always runs FederatedScope distributed",
    "federate.client_num": "it is the number of clients in the testbed's clients list",
    "distribute.use": "flbed always runs FederatedScope distributed",
    "distribute.role": "it follows from server and clients",
    "distribute.data_idx": "it follows from the client's position in the clients list",
    "distribute.server_host": "flbed places the server",
    "distribute.server_port": "flbed places the server",
    "distribute.client_host": "flbed places the clients",
    "distribute.client_port": "flbed places the clients",
}


def owned_key_problems(config):
    """One message per key of the file that flbed sets itself."""
    problems = []
    for dotted, reason in OWNED_KEYS.items():
        node = config
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            problems.append(f"federatedscope.config.{dotted}: set by flbed ({reason}); "
                            "remove it from the file")
    return problems


def total_rounds(config):
    rounds = (config.get("federate") or {}).get("total_round_num")
    return rounds if isinstance(rounds, int) else FS_DEFAULT_ROUNDS


def render(config, *, role, data_idx, client_num, server_host, own_host, port=GRPC_PORT):
    """The complete configuration of one participant, as a plain mapping."""
    rendered = copy.deepcopy(config)
    rendered.update(use_gpu=False, outdir=OUTPUT_DIR, expname=EXPERIMENT_NAME)
    federate = rendered.setdefault("federate", {})
    federate.update(mode="distributed", client_num=client_num)
    distribute = rendered.setdefault("distribute", {})
    distribute.update(use=True, role=role, data_idx=data_idx,
                      server_host=server_host, server_port=port)
    if role == "client":
        distribute.update(client_host=own_host, client_port=port)
    return rendered
