"""Entry point of flbed's FederatedScope stand-in (a test double, never shipped).

    python -m federatedscope.main --cfg FILE [KEY VALUE ...]

Runs one participant of a distributed run, like the real framework's entry point.
Exit status: 0 after finishing, 1 for a config or address it cannot use, 3 when
FLBED_STANDIN_EXIT_AT_ROUND says so.
"""

import argparse
import logging
import sys

from . import config, report, toy
from .client import Client
from .server import Server

logger = logging.getLogger("federatedscope")


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="federatedscope.main",
        description="flbed's test double for FederatedScope's distributed mode")
    parser.add_argument("--cfg", dest="cfg_file", default="", help="YAML config file")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    report.start_logging()
    try:
        cfg = config.load(args.cfg_file, args.opts)
        outdir = config.resolve_outdir(cfg)
    except (config.ConfigError, OSError) as err:
        logger.error(f"stand-in: {err}")
        return 1

    report.log_to_outdir(outdir)
    logger.info(f"the used configs are: \n{config.dump(cfg)}")
    with open(f"{outdir}/config.yaml", "w", encoding="utf-8") as handle:
        handle.write(config.dump(cfg))

    exit_at_round = toy.env_int("FLBED_STANDIN_EXIT_AT_ROUND", -1)
    results = report.Results(outdir)
    role = cfg["distribute"]["role"]
    participant = (Server if role == "server" else Client)(cfg, results, exit_at_round)
    try:
        return participant.run() or 0
    except OSError as err:
        logger.error(f"stand-in {role}: {err}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
