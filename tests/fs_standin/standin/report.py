"""What a participant leaves behind: its log (stdout and exp_print.log) and its result files.

Shapes follow the real framework under numpy 2: result lines are ``str(dict)``, aggregated
values print as ``np.float64(...)``, system metrics are JSON lines, and stdout is coloured.
"""

import json
import logging
import os
import socket
import sys

logger = logging.getLogger("federatedscope")

LOG_FORMAT = "%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s"
COLOURS = {logging.WARNING: "\x1b[33;20m", logging.ERROR: "\x1b[31;20m"}
INFO_COLOUR = "\x1b[38;5;39m"
RESET = "\x1b[0m"


class NpFloat(float):
    """A float that prints the way numpy 2 prints its scalars inside a dict."""

    def __repr__(self):
        return f"np.float64({float.__repr__(self)})"


class _ColourFormatter(logging.Formatter):
    def format(self, record):
        colour = COLOURS.get(record.levelno, INFO_COLOUR)
        return colour + super().format(record) + RESET


def rounded(value, digits=6):
    """A copy with every float rounded, as the real framework's log filter does."""
    if isinstance(value, dict):
        return {key: rounded(item, digits) for key, item in value.items()}
    if isinstance(value, list):
        return [rounded(item, digits) for item in value]
    if isinstance(value, float):
        return type(value)(round(value, digits)) if value == value else value
    return value


def start_logging():
    """Coloured stdout until the outdir exists."""
    logger.handlers = []
    logger.propagate = False
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_ColourFormatter(LOG_FORMAT))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def log_to_outdir(outdir):
    handler = logging.FileHandler(os.path.join(outdir, "exp_print.log"))
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logger.addHandler(handler)
    try:
        machine = socket.gethostbyname(socket.gethostname())
    except OSError:
        machine = "unknown"
    logger.info(f"the current machine is at {machine}")
    logger.info(f"the current dir is {os.getcwd()}")
    logger.info(f"the output dir is {outdir}")


class Results:
    """Appends result lines to the files of one participant's outdir."""

    def __init__(self, outdir):
        self.outdir = outdir

    def _append(self, name, line):
        with open(os.path.join(self.outdir, name), "a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def raw(self, role, round_id, results, log=True):
        line = {"Role": role, "Round": round_id, "Results_raw": results}
        if log:
            logger.info(rounded(line))
        self._append("eval_results.raw", str(line))
        return line

    def formatted(self, line):
        """A line of eval_results.log (server only)."""
        self._append("eval_results.log", str(line))

    def system_metrics(self, metrics):
        logger.info(f"In worker #{metrics['id']}, the system-related metrics are: "
                    f"{rounded(metrics)}")
        self._append("system_metrics.log", json.dumps(metrics))


def system_metrics(worker_id, elapsed_s, model_size, flops):
    """The real framework's keys; it counts no upload/download bytes in distributed mode."""
    return {
        "id": worker_id,
        "fl_end_time_minutes": elapsed_s / 60,
        "total_model_size": model_size,
        "total_flops": flops,
        "total_upload_bytes": 0,
        "total_download_bytes": 0,
        "global_convergence_round": 0,
        "local_convergence_round": 0,
        "global_convergence_time_minutes": 0,
        "local_convergence_time_minutes": 0,
    }
