"""The server: waits for every client to join, runs the rounds, merges evaluations, finishes.

A round waits for a reply from every client, without any time limit: a dead client stalls
the server for good, which is what the real framework does in synchronous mode.
"""

import logging
import math
import sys
import time

from . import report, toy, wire

logger = logging.getLogger("federatedscope")

SERVER_ROLE = "Server #"


class Server:
    def __init__(self, cfg, results, exit_at_round):
        self.cfg = cfg
        self.results = results
        self.exit_at_round = exit_at_round
        self.client_num = cfg["federate"]["client_num"]
        self.total_rounds = cfg["federate"]["total_round_num"]
        self.eval_freq = max(1, int(cfg["eval"]["freq"]))
        self.addresses = {}
        self.buffer = []
        self.weights = toy.initial_weights()
        self.rounds = {}
        self.started_s = time.monotonic()

    def listen(self):
        host, port = self.cfg["distribute"]["server_host"], self.cfg["distribute"]["server_port"]
        self.listener = wire.Listener(host, port)
        logger.info(f"Server: Listen to {host}:{port}...")
        logger.info("Server has been set up ... ")

    def accept_joins(self):
        while len(self.addresses) < self.client_num:
            message = self.listener.receive()
            if message["msg_type"] != "join_in":
                continue
            client_id = len(self.addresses) + 1
            self.addresses[client_id] = (message["host"], message["port"])
            self.send(client_id, {"msg_type": "assign_client_id", "client_id": client_id})

    def send(self, client_id, message):
        host, port = self.addresses[client_id]
        wire.send(host, port, dict(message, sender=0))

    def broadcast(self, msg_type, round_id):
        padding = "x" * toy.env_int("FLBED_STANDIN_MODEL_BYTES", 0)
        for client_id in self.addresses:
            self.send(client_id, {"msg_type": msg_type, "round": round_id,
                                  "weights": self.weights, "padding": padding})

    def wait_all(self, msg_type, round_id):
        """One reply per client for this round; other messages wait in the buffer."""
        replies = [m for m in self.buffer if (m["msg_type"], m["round"]) == (msg_type, round_id)]
        self.buffer = [m for m in self.buffer if m not in replies]
        while len(replies) < self.client_num:
            message = self.listener.receive()
            if (message.get("msg_type"), message.get("round")) == (msg_type, round_id):
                replies.append(message)
            else:
                self.buffer.append(message)
        return replies

    def start_round(self, round_id, first=False):
        if round_id == self.exit_at_round:
            logger.warning(f"FLBED_STANDIN_EXIT_AT_ROUND={round_id}: exiting with status 3")
            sys.exit(3)
        if first:
            logger.info(f"----------- Starting training (Round #{round_id}) -------------")
        else:
            logger.info(
                f"----------- Starting a new training round (Round #{round_id}) -------------")
        self.broadcast("model_para", round_id)

    def run(self):
        self.listen()
        self.accept_joins()
        self.start_round(0, first=True)
        for round_id in range(self.total_rounds):
            self.weights = toy.aggregate(self.wait_all("model_para", round_id))
            last = round_id + 1 == self.total_rounds
            evaluating = last or (round_id + 1) % self.eval_freq == 0
            if evaluating and last:
                logger.info("Server: Training is finished! Starting evaluation.")
            elif evaluating:
                logger.info(f"Server: Starting evaluation at the end of round {round_id}.")
            if evaluating:
                self.broadcast("evaluate", round_id)
            if not last:
                self.start_round(round_id + 1)
            if evaluating:
                self.merge_evaluations(round_id, self.wait_all("metrics", round_id))
        logger.info("Server: Final evaluation is finished! Starting merging results.")
        self.write_final()
        self.finish()

    def merge_evaluations(self, round_id, replies):
        per_client = {m["sender"]: m["results"] for m in replies}
        lists = {key: [float(res[key]) for res in per_client.values()]
                 for key in next(iter(per_client.values()))}
        self.rounds[round_id] = (per_client, lists)
        line = {"Role": SERVER_ROLE, "Round": round_id}
        line.update(summaries(lists))
        logger.info(report.rounded(line))
        self.results.formatted(line)
        self.results.raw(SERVER_ROLE, round_id, lists, log=False)

    def write_final(self):
        best_round = min(self.rounds, key=lambda r: sum(self.rounds[r][1]["val_loss"]))
        per_client, lists = self.rounds[best_round]
        best = {key: min(sum(v[key]) / len(v[key]) for _, v in self.rounds.values())
                for key in lists}
        merged = summaries(lists)
        final = {"client_best_individual": best,
                 "client_summarized_weighted_avg": merged["Results_weighted_avg"],
                 "client_summarized_avg": merged["Results_avg"],
                 "client_summarized_fairness": merged["Results_fairness"]}
        self.results.formatted(self.results.raw(SERVER_ROLE, "Final", final))
        last_clients, _ = self.rounds[max(self.rounds)]
        for client_id in sorted(last_clients):
            line = self.results.raw(f"Client #{client_id}", self.total_rounds,
                                    last_clients[client_id])
            self.results.formatted(line)

    def finish(self):
        for client_id in self.addresses:
            self.send(client_id, {"msg_type": "finish", "round": self.total_rounds})
        elapsed_s = time.monotonic() - self.started_s
        # The real server finishes twice and so writes its metrics line twice.
        for extra_s in (0.0, 0.05):
            self.results.system_metrics(report.system_metrics(0, elapsed_s + extra_s, 0, 0))
        self.listener.close()


def summaries(lists):
    """Weighted average, plain average and fairness of per-client values, numpy-2 style."""
    count = len(next(iter(lists.values())))
    weights = lists.get("test_total") or [1.0] * count
    weighted, plain, fairness = {}, {}, {}
    for key, values in lists.items():
        weighted[key] = report.NpFloat(sum(v * w for v, w in zip(values, weights))
                                       / sum(weights))
        plain[key] = report.NpFloat(sum(values) / count)
        if key.endswith("_total"):
            fairness[key] = plain[key]
            continue
        mean = sum(values) / count
        fairness[f"{key}_std"] = report.NpFloat(
            math.sqrt(sum((v - mean) ** 2 for v in values) / count))
        fairness[f"{key}_min"] = report.NpFloat(min(values))
        fairness[f"{key}_max"] = report.NpFloat(max(values))
        # Fewer than ten clients leave the bottom decile empty: the real one prints nan.
        tenth = sorted(values)[: count // 10]
        fairness[f"{key}_bottom10%"] = report.NpFloat(
            sum(tenth) / len(tenth) if tenth else float("nan"))
    return {"Results_weighted_avg": weighted, "Results_avg": plain,
            "Results_fairness": fairness}
