"""Messages between participants: one TCP connection per message, one JSON line, one ack.

Like the real framework's unary calls, a send returns once the receiver has queued the
message, so two messages from one sender arrive in the order they were sent. A message that
cannot be delivered is logged and dropped, without retry, as the real framework does.
"""

import json
import logging
import queue
import socket
import socketserver
import threading

logger = logging.getLogger("federatedscope")

CONNECT_TIMEOUT_S = 10.0
ACK = b"ok\n"


def resolve(host, port):
    """The first TCP address for host:port, as (family, sockaddr)."""
    infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM)
    family, _, _, _, sockaddr = infos[0]
    return family, sockaddr


class _Handler(socketserver.StreamRequestHandler):
    def handle(self):
        line = self.rfile.readline()
        if not line:
            return
        try:
            message = json.loads(line)
        except ValueError:
            logger.warning(f"dropped a malformed message from {self.client_address}")
            return
        self.server.inbox.put(message)
        self.wfile.write(ACK)


class Listener:
    """Accepts messages at exactly host:port and queues them for the participant."""

    def __init__(self, host, port):
        try:
            family, sockaddr = resolve(host, port)
        except OSError as err:
            raise OSError(f"cannot resolve {host!r} to listen at {host}:{port}: {err}") from err
        server_class = type("_Server", (socketserver.ThreadingTCPServer,), {
            "address_family": family,
            "allow_reuse_address": True,
            "daemon_threads": True,
        })
        try:
            self._server = server_class(sockaddr, _Handler)
        except OSError as err:
            raise OSError(f"cannot listen at {host}:{port}: {err.strerror}") from err
        self._server.inbox = queue.Queue()
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()

    def receive(self):
        """The next message; waits without limit, as the real framework does."""
        return self._server.inbox.get()

    def close(self):
        self._server.shutdown()
        self._server.server_close()


def send(host, port, message):
    """Deliver one message; False (after a warning) when it could not be delivered."""
    payload = (json.dumps(message) + "\n").encode()
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S) as conn:
            conn.settimeout(None)
            conn.sendall(payload)
            ack = conn.makefile("rb").readline()
        if ack != ACK:
            raise ConnectionError("connection closed before the receiver acknowledged")
    except OSError as err:
        logger.warning(f"could not deliver {message['msg_type']!r} to {host}:{port}: {err}")
        return False
    return True
