"""Entry point of a flbed participant container.

The container starts long before FederatedScope may run: the host still has to shape the
container's link, and the server must be listening before any client starts. So this program

1. imports the framework while nothing is being measured (start-up is not what an experiment
   studies),
2. writes ``<control>/waiting`` and waits for the host to create ``<control>/start``,
3. runs ``python -m federatedscope.main --cfg <config>`` in this process,
4. writes ``<control>/ready`` once the participant's own gRPC port accepts connections, which
   is how the host knows the server listens before it starts the clients, and
5. with ``--hold-join``, keeps a client's join request back until the host has written
   ``<control>/throttled``: the host gives the container its device's CPU quota once it is
   ready, and no part of a round may run at the host's full speed, and
6. with ``--linger-while HOST:PORT``, keeps a client that finished well alive while the
   server still accepts connections there, that is until the server's process has ended. The
   server sends "finish" to every client once more as it ends; a client whose container has
   already stopped has lost its name, and each such send then waits for a failed name lookup
   (about 12 s per client, one after another). A client that is still there answers at once.
   The server's address is looked up once: on an internal network a name that is gone takes
   Docker's resolver 10 s to fail, which a lookup per poll would wait every time.

FederatedScope waits for messages in a busy loop, so a waiting participant burns all the CPU
its quota allows and steals it from the participants that compute. With ``--fs-wait
blocking`` (the default) that loop is replaced, in this process only, by a wait on a
condition variable; ``--fs-wait spinning`` leaves the framework untouched. No file of the
framework is changed either way. ``<control>/emulation.json`` records what was done.

The exit status is FederatedScope's. Only the Python standard library is used here: the file
is copied into the image and runs beside whatever FederatedScope version the image holds.
"""

import argparse
import collections
import importlib
import json
import os
import runpy
import socket
import sys
import threading
import time

POLL_S = 0.1
LINGER_POLL_S = 0.5
# A server that is gone leaves its address unanswered on a fenced network, not refused.
LINGER_CONNECT_S = 1.0
# However long the server takes to end, a client that finished stops after this.
LINGER_MAX_S = 120.0
# A blocked receive wakes up this often, so that a signal (FederatedScope's round timeout
# uses SIGALRM) is handled promptly even where a lock wait would not be interrupted.
RECEIVE_WAKE_S = 1.0
SERVICER_MODULE = "federatedscope.core.gRPC_server"
SERVICER_CLASS = "gRPCComServeFunc"
CLIENT_MODULE = "federatedscope.core.workers.client"
CLIENT_CLASS = "Client"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg", required=True, help="FederatedScope config file")
    parser.add_argument("--control", required=True, help="directory shared with the host")
    parser.add_argument("--listen", required=True, help="HOST:PORT this participant binds")
    parser.add_argument("--no-preload", action="store_true",
                        help="import the framework only after the start signal")
    parser.add_argument("--fs-wait", choices=("blocking", "spinning"), default="blocking",
                        help="how FederatedScope waits for a message (spinning: untouched)")
    parser.add_argument("--hold-join", action="store_true",
                        help="send a client's join request only after <control>/throttled")
    parser.add_argument("--linger-while", metavar="HOST:PORT",
                        help="after finishing well, stay while HOST:PORT accepts connections")
    return parser.parse_args(argv)


def accepts(address, port):
    try:
        with socket.create_connection((address, port), timeout=LINGER_CONNECT_S):
            return True
    except OSError:
        return False


def linger_while_listening(server, max_s=LINGER_MAX_S, poll_s=LINGER_POLL_S):
    """Return once the server SERVER ("host:port") stops accepting connections, or after
    MAX_S seconds; at once when its name no longer resolves."""
    host, port = server.rsplit(":", 1)
    try:
        address = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)[0][4][0]
    except OSError:
        return
    deadline = time.monotonic() + max_s
    while time.monotonic() < deadline and accepts(address, int(port)):
        time.sleep(poll_s)


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


class BlockingMessageQueue:
    """A FIFO with the deque calls the servicer makes, whose reader sleeps while it is empty."""

    def __init__(self):
        self._items = collections.deque()
        self._arrived = threading.Condition()

    def append(self, item):
        with self._arrived:
            self._items.append(item)
            self._arrived.notify()

    def popleft(self):
        return self._items.popleft()

    def __len__(self):
        return len(self._items)

    def wait_and_pop(self):
        with self._arrived:
            while not self._items:
                self._arrived.wait(RECEIVE_WAKE_S)
            return self._items.popleft()


def _blocking_init(original_init):
    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.msg_queue = BlockingMessageQueue()
    return init


def _blocking_receive(self):
    return self.msg_queue.wait_and_pop()


def find_class(module_name, class_name):
    """The framework's class, or None where this framework has no such module or class."""
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    return getattr(module, class_name, None)


def make_waits_blocking():
    """Swap the message servicer's busy wait for a blocking one; False if there is none."""
    servicer = find_class(SERVICER_MODULE, SERVICER_CLASS)
    if servicer is None or not hasattr(servicer, "receive"):
        return False
    servicer.__init__ = _blocking_init(servicer.__init__)
    servicer.receive = _blocking_receive
    return True


def hold_join_until(path):
    """Make the client's join request wait for ``path``; False if the framework has no join."""
    client = find_class(CLIENT_MODULE, CLIENT_CLASS)
    if client is None or not hasattr(client, "join_in"):
        return False
    original_join = client.join_in

    def join_in(self, *args, **kwargs):
        wait_for_file(path)
        return original_join(self, *args, **kwargs)

    client.join_in = join_in
    return True


def prepare_framework(args):
    """Import and adapt the framework as the flags say; what was done, for the record."""
    record = {"fs_wait": args.fs_wait, "hold_join": args.hold_join}
    importlib.import_module("federatedscope.main")
    if args.fs_wait == "blocking":
        record["busy_wait_replaced"] = make_waits_blocking()
    if args.hold_join:
        record["join_held"] = hold_join_until(os.path.join(args.control, "throttled"))
    return record


def write_record(control, record):
    with open(os.path.join(control, "emulation.json"), "w", encoding="utf-8") as handle:
        json.dump(record, handle)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    host, _, port = args.listen.rpartition(":")

    # The generated gRPC code of FederatedScope needs protobuf's pure-Python parser.
    os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")

    if not args.no_preload:
        write_record(args.control, prepare_framework(args))
    touch(os.path.join(args.control, "waiting"))
    wait_for_file(os.path.join(args.control, "start"))
    if args.no_preload:
        write_record(args.control, prepare_framework(args))
    report_ready_when_listening(host, int(port), os.path.join(args.control, "ready"))

    sys.argv = ["federatedscope.main", "--cfg", args.cfg]
    try:
        runpy.run_module("federatedscope.main", run_name="__main__", alter_sys=True)
    except SystemExit as ended:
        if ended.code not in (None, 0):
            raise
    if args.linger_while:
        linger_while_listening(args.linger_while)
    return 0


if __name__ == "__main__":
    sys.exit(main())
