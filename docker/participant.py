"""Entry point of a flbed participant container.

The container starts long before FederatedScope may run: the host still has to shape the
container's link, and the server must be listening before any client starts. So this program

1. imports the framework while nothing is being measured (start-up is not what an experiment
   studies),
2. writes ``<control>/waiting`` and waits for the host to create ``<control>/start``,
3. runs ``python -m federatedscope.main --cfg <config>`` in this process, and
4. writes ``<control>/ready`` once the participant's own gRPC port accepts connections, which
   is how the host knows the server listens before it starts the clients.

The exit status is FederatedScope's. Only the Python standard library is used here: the file
is copied into the image and runs beside whatever FederatedScope version the image holds.
"""

import argparse
import importlib
import os
import runpy
import socket
import sys
import threading
import time

POLL_S = 0.1


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg", required=True, help="FederatedScope config file")
    parser.add_argument("--control", required=True, help="directory shared with the host")
    parser.add_argument("--listen", required=True, help="HOST:PORT this participant binds")
    parser.add_argument("--no-preload", action="store_true",
                        help="import the framework only after the start signal")
    return parser.parse_args(argv)


def touch(path):
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(f"{time.time():.3f}\n")


def wait_for_file(path):
    while not os.path.exists(path):
        time.sleep(POLL_S)


def port_accepts(host, port):
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def report_ready_when_listening(host, port, ready_path):
    def watch():
        while not port_accepts(host, port):
            time.sleep(POLL_S)
        touch(ready_path)

    threading.Thread(target=watch, name="flbed-ready", daemon=True).start()


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    host, _, port = args.listen.rpartition(":")

    # The generated gRPC code of FederatedScope needs protobuf's pure-Python parser.
    os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")

    if not args.no_preload:
        importlib.import_module("federatedscope.main")

    touch(os.path.join(args.control, "waiting"))
    wait_for_file(os.path.join(args.control, "start"))
    report_ready_when_listening(host, int(port), os.path.join(args.control, "ready"))

    sys.argv = ["federatedscope.main", "--cfg", args.cfg]
    runpy.run_module("federatedscope.main", run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
