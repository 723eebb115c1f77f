"""The stand-in's mirror of the builders ``flbed calibrate`` uses: a config node, toy data, a
linear model, its loss and optimizer, all in torch, so that the calibration workload does real
training steps in the stand-in's image too.

Only what flbed's reference workload calls is mirrored: ``global_cfg.clone()``,
``merge_from_file``, ``merge_from_other_cfg``, attribute access, and the four builders.
"""

import copy

import yaml

from . import config as config_lib

TRAIN_SAMPLES = 256
INPUT_DIMS = 32


class Node(dict):
    """A config section whose keys read as attributes, as the real framework's do."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def clone(self):
        return wrap(copy.deepcopy(unwrap(self)))

    def merge_from_file(self, path):
        with open(path, encoding="utf-8") as handle:
            self.merge_from_other_cfg(yaml.safe_load(handle) or {})

    def merge_from_other_cfg(self, other):
        merged = unwrap(self)
        config_lib._merge(merged, unwrap(other))
        self.clear()
        self.update(wrap(merged))


def wrap(value):
    if isinstance(value, dict):
        return Node({key: wrap(item) for key, item in value.items()})
    return value


def unwrap(value):
    if isinstance(value, dict):
        return {key: unwrap(item) for key, item in value.items()}
    return value


global_cfg = wrap({**config_lib.DEFAULTS, "backend": "torch",
                   "criterion": {"type": "MSELoss"},
                   "train": {"local_update_steps": 1,
                             "optimizer": {"type": "SGD", "lr": 0.1}}})


def get_data(config, client_cfgs=None):
    """One client's training batches: a seeded linear problem."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    generator = torch.Generator().manual_seed(int(config.seed) + int(config.distribute.data_idx))
    x = torch.randn(TRAIN_SAMPLES, INPUT_DIMS, generator=generator)
    y = x @ torch.randn(INPUT_DIMS, 1, generator=generator)
    loader = DataLoader(TensorDataset(x, y), batch_size=int(config.data.batch_size),
                        shuffle=True, generator=generator)
    return {"train": loader}, config


def get_model(model_config, local_data=None, backend="torch"):
    import torch

    return torch.nn.Linear(INPUT_DIMS, 1)


def get_criterion(criterion_type, device):
    import torch

    return getattr(torch.nn, criterion_type)()


def get_optimizer(model, type, lr, **kwargs):  # noqa: A002 - the real builder's signature
    import torch

    return getattr(torch.optim, type)(model.parameters(), lr=lr)
