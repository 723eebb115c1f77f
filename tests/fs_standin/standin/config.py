"""Configuration: the real framework's defaults for the keys the stand-in reads, plus overrides.

Keys the stand-in does not know are kept as given and written back to config.yaml; the real
framework would check them, the stand-in only carries them.
"""

import copy
import os
import time
from datetime import datetime

import yaml


class ConfigError(Exception):
    """A config the stand-in cannot run; the message says which key and value."""


DEFAULTS = {
    "use_gpu": False,
    "outdir": "",
    "expname": "",
    "expname_tag": "",
    "seed": 0,
    "verbose": 1,
    "print_decimal_digits": 6,
    "federate": {
        "mode": "standalone",
        "method": "FedAvg",
        "client_num": 0,
        "total_round_num": 50,
        "sample_client_num": -1,
    },
    "distribute": {
        "use": False,
        "server_host": "0.0.0.0",
        "server_port": 50050,
        "client_host": "0.0.0.0",
        "client_port": 50050,
        "role": "client",
        "data_idx": -1,
    },
    "data": {"type": "toy", "batch_size": 64},
    "model": {"type": "lr"},
    "train": {"local_update_steps": 1, "optimizer": {"lr": 0.1}},
    "eval": {"freq": 1},
}


def _merge(base, extra):
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _set_dotted(cfg, dotted_key, text):
    node = cfg
    *parents, leaf = dotted_key.split(".")
    for name in parents:
        node = node.setdefault(name, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted_key!r}: {name!r} is not a section")
    node[leaf] = yaml.safe_load(text) if text != "" else ""


def load(cfg_path, overrides):
    """Defaults, then the YAML file, then KEY VALUE pairs from the command line."""
    cfg = copy.deepcopy(DEFAULTS)
    if cfg_path:
        try:
            with open(cfg_path, encoding="utf-8") as handle:
                _merge(cfg, yaml.safe_load(handle) or {})
        except OSError as err:
            raise ConfigError(f"cannot read --cfg {cfg_path!r}: {err.strerror}") from err
    if len(overrides) % 2:
        raise ConfigError(f"overrides come in KEY VALUE pairs, got {overrides!r}")
    for key, text in zip(overrides[::2], overrides[1::2]):
        _set_dotted(cfg, key, text)
    check(cfg)
    return cfg


def check(cfg):
    """Refuse what the real framework would refuse for a distributed run."""
    federate, distribute = cfg["federate"], cfg["distribute"]
    if federate["mode"] != "distributed" or distribute["use"] is not True:
        raise ConfigError(
            "the stand-in runs only distributed mode: need federate.mode 'distributed' "
            f"and distribute.use True, got {federate['mode']!r} and {distribute['use']!r}")
    if distribute["role"] not in ("server", "client"):
        raise ConfigError(
            f"distribute.role must be 'server' or 'client', got {distribute['role']!r}")
    if not isinstance(federate["client_num"], int) or federate["client_num"] < 1:
        raise ConfigError(
            f"federate.client_num must be a positive integer, got {federate['client_num']!r}")
    if not isinstance(federate["total_round_num"], int) or federate["total_round_num"] < 1:
        raise ConfigError("federate.total_round_num must be a positive integer, "
                          f"got {federate['total_round_num']!r}")
    if federate["sample_client_num"] in (-1, None):
        federate["sample_client_num"] = federate["client_num"]


def resolve_outdir(cfg):
    """outdir/expname, or outdir/expname/sub_exp_<time> when that exists (as the real one)."""
    if cfg["outdir"] == "":
        cfg["outdir"] = os.path.join(os.getcwd(), "exp")
    if cfg["expname"] == "":
        cfg["expname"] = (f"{cfg['federate']['method']}_{cfg['model']['type']}_on"
                          f"_{cfg['data']['type']}_lr{cfg['train']['optimizer']['lr']}"
                          f"_lstep{cfg['train']['local_update_steps']}")
    if cfg["expname_tag"]:
        cfg["expname"] = f"{cfg['expname']}_{cfg['expname_tag']}"
    outdir = os.path.join(cfg["outdir"], cfg["expname"])
    if os.path.isdir(outdir):
        base = outdir
        outdir = os.path.join(base, "sub_exp" + datetime.now().strftime("_%Y%m%d%H%M%S"))
        while os.path.exists(outdir):
            time.sleep(1)
            outdir = os.path.join(base, "sub_exp" + datetime.now().strftime("_%Y%m%d%H%M%S"))
    os.makedirs(outdir)
    cfg["outdir"] = outdir
    return outdir


def dump(cfg):
    return yaml.safe_dump(cfg, default_flow_style=False, sort_keys=True)
