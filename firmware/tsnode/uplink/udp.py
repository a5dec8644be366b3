"""UDP transport: one datagram per frame to the gateway, acks come back as datagrams.

On a board the network must be up first (the sender asks the board seam); on the virtual
board this is a plain socket on loopback. Non-blocking: send() never waits, poll() waits
at most timeout_ms.
"""

import select
import socket

from micropython import const

_RECV_MAX = const(1100)  # > the largest frame (1043), so oversize acks are seen as such


class UdpTransport:
    acks = True
    name = "udp"

    def __init__(self, host, port, recv_max=_RECV_MAX):
        self.recv_max = recv_max  # bytes read per datagram (each poll allocates this much)
        self.addr = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0][-1]
        self.sock = None
        self._poll = None

    def connect(self):
        if self.sock is None:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setblocking(False)
            self._poll = select.poll()
            self._poll.register(s, select.POLLIN)
            self.sock = s
        return True

    def send(self, frame):
        try:
            self.connect()
            self.sock.sendto(frame, self.addr)
            return True
        except OSError:
            return False  # no route / buffer full: the frame stays queued

    def poll(self, timeout_ms):
        """One received datagram (bytes) or None."""
        if self.sock is None:
            return None
        try:
            if not self._poll.poll(timeout_ms):
                return None
            return self.sock.recv(self.recv_max)
        except OSError:
            return None  # e.g. ECONNREFUSED from an earlier datagram: nobody listens

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
