"""A toy federated problem with deterministic numbers: losses fall every round.

Every client pulls a small weight vector towards its own target; the targets scatter around
one shared target, so averaging the clients' weights lowers the shared test and val loss.
"""

import os
import random
import time

DIMS = 5
STEP_RATE = 0.3
LOSS_SCALE = 4.0
TEST_TOTAL = 1000
VAL_TOTAL = 1000
VAL_FACTOR = 1.02


def _gauss_vector(seed):
    rng = random.Random(seed)
    return [rng.gauss(0.0, 1.0) for _ in range(DIMS)]


def shared_target(seed):
    return _gauss_vector(seed)


def client_target(seed, data_idx):
    offsets = _gauss_vector(seed * 1000 + data_idx)
    return [t + 0.1 * o for t, o in zip(shared_target(seed), offsets)]


def initial_weights():
    return [0.0] * DIMS


def mean_sq_error(weights, target):
    return LOSS_SCALE * sum((w - t) ** 2 for w, t in zip(weights, target)) / DIMS


def local_train(weights, target, steps, step_s, busy=False):
    """Local update steps, each taking step_s seconds; returns (new weights, avg loss).

    busy: each step computes for its time instead of sleeping, as real training does.
    """
    losses = []
    for _ in range(steps):
        if busy:
            spin(step_s)
        else:
            time.sleep(step_s)
        losses.append(mean_sq_error(weights, target))
        weights = [w + STEP_RATE * (t - w) for w, t in zip(weights, target)]
    return weights, sum(losses) / len(losses)


def spin(duration_s):
    """Use the CPU for duration_s seconds of wall time."""
    end = time.monotonic() + duration_s
    total = 0
    while time.monotonic() < end:
        total += sum(i * i for i in range(1000))
    return total


def evaluate(weights, seed):
    """Test and val results of a model, keyed as the real framework keys them."""
    test_avg = mean_sq_error(weights, shared_target(seed))
    val_avg = test_avg * VAL_FACTOR
    return {
        "test": {"test_loss": test_avg * TEST_TOTAL, "test_total": TEST_TOTAL,
                 "test_avg_loss": test_avg},
        "val": {"val_loss": val_avg * VAL_TOTAL, "val_total": VAL_TOTAL,
                "val_avg_loss": val_avg},
    }


def aggregate(updates):
    """FedAvg: the sample-weighted mean of the clients' weights."""
    total = sum(update["sample_size"] for update in updates)
    return [
        sum(update["weights"][dim] * update["sample_size"] for update in updates) / total
        for dim in range(DIMS)
    ]


def model_size():
    return DIMS + 1


def flops(samples):
    return float(samples * DIMS * DIMS)


def allocate_mb(megabytes, step_s=0.05):
    """Touch ``megabytes`` MiB of fresh memory, one MiB at a time, and return it."""
    chunks = []
    for _ in range(megabytes):
        chunks.append(bytearray(b"\x01" * 2**20))
        time.sleep(step_s)
    return chunks


def env_float(name, default):
    text = os.environ.get(name, "")
    return float(text) if text else default


def env_int(name, default):
    text = os.environ.get(name, "")
    return int(text) if text else default
