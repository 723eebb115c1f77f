"""A client: binds its own address, joins the server, trains and evaluates on request.

The server calls the client back at client_host:client_port, so the client binds exactly
there. If the join cannot be delivered (the server is not listening yet) the client logs a
warning and waits for good, as the real framework does: start the server first.
"""

import logging
import sys
import time

from . import report, toy, wire

logger = logging.getLogger("federatedscope")


class Client:
    def __init__(self, cfg, results, exit_at_round):
        self.cfg = cfg
        self.results = results
        self.exit_at_round = exit_at_round
        distribute = cfg["distribute"]
        self.host, self.port = distribute["client_host"], distribute["client_port"]
        self.server = (distribute["server_host"], distribute["server_port"])
        self.data_idx = distribute["data_idx"]
        self.seed = cfg["seed"]
        self.target = toy.client_target(self.seed, self.data_idx)
        self.steps = int(cfg["train"]["local_update_steps"])
        self.train_total = int(cfg["data"]["batch_size"]) * self.steps
        self.step_s = toy.env_float("FLBED_STANDIN_ROUND_S", 0.2)
        self.busy = toy.env_int("FLBED_STANDIN_TRAIN_BUSY", 0) == 1
        self.client_id = -1
        self.started_s = time.monotonic()
        self.trained_samples = 0
        self.ballast = []

    @property
    def role(self):
        return f"Client #{self.client_id}"

    def reply(self, message):
        wire.send(*self.server, dict(message, sender=self.client_id))

    def run(self):
        self.listener = wire.Listener(self.host, self.port)
        logger.info(f"Client: Listen to {self.host}:{self.port}...")
        logger.info(f"Client (address {self.host}:{self.port}) has been set up ... ")
        self.join_in()
        handlers = {"assign_client_id": self.on_assign, "model_para": self.on_model,
                    "evaluate": self.on_evaluate}
        while True:
            message = self.listener.receive()
            if message["msg_type"] == "finish":
                return self.on_finish()
            handlers[message["msg_type"]](message)

    def join_in(self):
        """Ask the server to take part; named like the real client's method, where flbed's
        entry point holds the join back until the host has set the CPU quota."""
        self.reply({"msg_type": "join_in", "host": self.host, "port": self.port,
                    "data_idx": self.data_idx})

    def on_assign(self, message):
        self.client_id = message["client_id"]
        logger.info(f"Client (address {self.host}:{self.port}) is assigned with "
                    f"#{self.client_id}.")

    def on_model(self, message):
        round_id = message["round"]
        if round_id == self.exit_at_round:
            logger.warning(f"FLBED_STANDIN_EXIT_AT_ROUND={round_id}: exiting with status 3")
            sys.exit(3)
        self.ballast.extend(toy.allocate_mb(toy.env_int("FLBED_STANDIN_ALLOCATE_MB", 0)
                                            if not self.ballast else 0))
        weights, avg_loss = toy.local_train(message["weights"], self.target,
                                            self.steps, self.step_s, self.busy)
        self.trained_samples += self.train_total
        self.results.raw(self.role, round_id, {
            "train_loss": avg_loss * self.train_total, "train_total": self.train_total,
            "train_avg_loss": avg_loss})
        self.reply({"msg_type": "model_para", "round": round_id, "weights": weights,
                    "sample_size": self.train_total, "padding": message.get("padding", "")})

    def on_evaluate(self, message):
        round_id = message["round"]
        evaluation = toy.evaluate(message["weights"], self.seed)
        self.results.raw(self.role, round_id, evaluation["test"])
        self.results.raw(self.role, round_id, evaluation["val"])
        both = dict(evaluation["test"], **evaluation["val"])
        self.results.raw(self.role, round_id, both, log=False)
        self.reply({"msg_type": "metrics", "round": round_id, "results": both})

    def on_finish(self):
        logger.info(f"================= client {self.client_id} received finish message "
                    "=================")
        elapsed_s = time.monotonic() - self.started_s
        self.results.system_metrics(report.system_metrics(
            self.client_id, elapsed_s, toy.model_size(), toy.flops(self.train_total)))
        self.listener.close()
        return 0
