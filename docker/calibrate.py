"""Reference workload of a flbed participant image: training steps of the configured model.

``flbed calibrate`` runs this in a container on each Docker host to learn how fast the host
trains the testbed's model, so that a profile can state its compute as a throughput (training
steps per second) and get the CPU quota that delivers it on any host.

The model, data, loss and optimizer are built with FederatedScope's own builders from a
participant's config, exactly as a client builds them; one step is a forward pass, a backward
pass and an optimizer step on one batch of the client's training data. The host changes the
container's CPU quota between measurements, so the program talks to it through files in
``--control``:

1. it builds the workload at the host's full speed, runs a few steps to warm up and writes
   ``warm`` (what was built);
2. for each ``measure-<i>`` the host writes (after setting the quota), it trains for at least
   the seconds that file names and at least ``MIN_STEPS`` steps, and writes
   ``result-<i>.json`` with the steps, the wall time and the steps per second;
3. it exits when the host writes ``done``.

Only the standard library, torch and the framework are used; the file runs beside whatever
FederatedScope version the image holds.
"""

import argparse
import json
import os
import sys
import time

POLL_S = 0.05
WARM_UP_STEPS = 5
MIN_STEPS = 3


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg", required=True, help="a client's FederatedScope config file")
    parser.add_argument("--control", required=True, help="directory shared with the host")
    return parser.parse_args(argv)


def write_json(path, value):
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(value, handle)
    os.replace(path + ".tmp", path)


def build_workload(cfg_path):
    """The configured model with its loss, optimizer and training batches, built as a client
    builds them."""
    from federatedscope.core.auxiliaries.criterion_builder import get_criterion
    from federatedscope.core.auxiliaries.data_builder import get_data
    from federatedscope.core.auxiliaries.model_builder import get_model
    from federatedscope.core.auxiliaries.optimizer_builder import get_optimizer
    from federatedscope.core.configs.config import global_cfg

    cfg = global_cfg.clone()
    cfg.merge_from_file(cfg_path)
    data, modified_cfg = get_data(config=cfg.clone())
    cfg.merge_from_other_cfg(modified_cfg)
    model = get_model(cfg.model, data, backend=cfg.backend)
    criterion = get_criterion(cfg.criterion.type, "cpu")
    optimizer = get_optimizer(model, **cfg.train.optimizer)
    return {"model": model, "loader": data["train"], "criterion": criterion,
            "optimizer": optimizer, "model_type": cfg.model.type, "data_type": cfg.data.type}


class Trainer:
    """Endless training steps over the training batches, starting over when they run out."""

    def __init__(self, workload):
        self.workload = workload
        self.batches = iter(workload["loader"])
        workload["model"].train()

    def next_batch(self):
        try:
            return next(self.batches)
        except StopIteration:
            self.batches = iter(self.workload["loader"])
            return next(self.batches)

    def step(self):
        x, label = self.next_batch()
        if len(label.size()) == 0:
            label = label.unsqueeze(0)
        optimizer = self.workload["optimizer"]
        optimizer.zero_grad()
        loss = self.workload["criterion"](self.workload["model"](x), label)
        loss.backward()
        optimizer.step()
        return loss.item()

    def measure(self, seconds):
        steps, started = 0, time.monotonic()
        while steps < MIN_STEPS or time.monotonic() - started < seconds:
            self.step()
            steps += 1
        elapsed = time.monotonic() - started
        return {"steps": steps, "seconds": round(elapsed, 4),
                "steps_per_s": round(steps / elapsed, 4)}


def describe(workload, warm_up_loss):
    parameters = sum(p.numel() for p in workload["model"].parameters())
    batch_size = getattr(workload["loader"], "batch_size", None)
    return {"model": workload["model_type"], "data": workload["data_type"],
            "parameters": int(parameters), "batch_size": batch_size,
            "warm_up_loss": round(warm_up_loss, 6)}


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")
    trainer = Trainer(build_workload(args.cfg))
    loss = 0.0
    for _ in range(WARM_UP_STEPS):
        loss = trainer.step()
    write_json(os.path.join(args.control, "warm"), describe(trainer.workload, loss))

    index = 0
    while not os.path.exists(os.path.join(args.control, "done")):
        request = os.path.join(args.control, f"measure-{index}")
        if not os.path.exists(request):
            time.sleep(POLL_S)
            continue
        with open(request, encoding="utf-8") as handle:
            seconds = float(json.load(handle)["seconds"])
        write_json(os.path.join(args.control, f"result-{index}.json"), trainer.measure(seconds))
        index += 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
