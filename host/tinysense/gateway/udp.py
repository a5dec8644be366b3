"""UDP transport: one datagram per frame; each ack goes back to the sender's address."""

from __future__ import annotations

import logging
import socket
import threading
import time

from tinysense.errors import TinysenseError
from tinysense.gateway.core import Ack
from tinysense.gateway.ingest import IngestLoop, Reply

log = logging.getLogger("tinysense.gateway")

DEFAULT_UDP_PORT = 47800


def parse_hostport(text: str, default_port: int = DEFAULT_UDP_PORT) -> tuple[str, int]:
    """'HOST:PORT', ':PORT', 'HOST' or '[v6]:PORT' -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, str(default_port)
    host = host.strip("[]") or "0.0.0.0"
    try:
        number = int(port)
        if not 0 <= number <= 65535:
            raise ValueError
    except ValueError:
        raise TinysenseError(f"bad address {text!r}; expected HOST:PORT, e.g. "
                             f"0.0.0.0:{default_port}") from None
    return host, number


class UdpTransport:
    """Receives frames as UDP datagrams; replies each ack to the sender's address."""

    def __init__(self, loop: IngestLoop, host: str, port: int):
        self.loop = loop
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        try:
            self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            raise TinysenseError(f"cannot listen on UDP {host}:{port}: {exc.strerror}; "
                                 "choose another --udp HOST:PORT") from None
        self.sock.setblocking(False)  # waits happen in poll(); reads drain what is there
        self.address = self.sock.getsockname()[:2]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._replies: dict[tuple, tuple[str, Reply]] = {}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gateway-udp", daemon=True)
        self._thread.start()

    def _peer(self, addr) -> tuple[str, Reply]:
        """(source name, reply function) for a sender address, cached (bounded)."""
        found = self._replies.get(addr)
        if found is None:
            if len(self._replies) > 10_000:
                self._replies.clear()
            sock = self.sock

            def reply(ack: Ack) -> None:
                sock.sendto(ack.frame, addr)
            found = self._replies[addr] = (f"udp:{addr[0]}:{addr[1]}", reply)
        return found

    def _read_available(self, limit: int = 256) -> list[tuple]:
        items = []
        recv = self.sock.recvfrom
        while len(items) < limit:
            try:
                data, addr = recv(65535)
            except (BlockingIOError, InterruptedError):
                break
            source, reply = self._peer(addr)
            items.append((data, source, reply, None))
        return items

    def _run(self) -> None:
        import select

        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(200):
                continue
            try:
                self.loop.submit_many(self._read_available())
            except OSError as exc:
                if self._stop.is_set():
                    break
                log.warning("UDP receive failed: %s", exc)
                time.sleep(0.05)
        self._drain()

    def _drain(self) -> None:
        """On stop: take what already arrived, so it is stored and acked before closing."""
        for _ in range(1000):
            try:
                items = self._read_available()
            except OSError:
                return
            if not items:
                return
            self.loop.submit_many(items)

    def stop_receiving(self) -> None:
        """Stop reading; the socket stays open so queued frames can still be acked."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)

    def close(self) -> None:
        self.stop_receiving()
        self.sock.close()
