"""Serial transport: each frame as one line "TSF1 <base64>\\n" on the UART/stdout.

Acks are optional: with acks=True the node reads "TSA1 <base64>\\n" lines from stdin
(the gateway writes them to the port); otherwise a frame counts as delivered once written.
"""

import sys

from binascii import a2b_base64, b2a_base64

PREFIX = "TSF1 "
ACK_PREFIX = "TSA1 "


class SerialTransport:
    name = "serial"

    def __init__(self, out=None, acks=False, inp=None):
        self.out = out or sys.stdout
        self.acks = acks
        self.inp = inp or sys.stdin
        self._poll = None
        self._line = ""

    def connect(self):
        return True

    def send(self, frame):
        try:
            self.out.write(PREFIX)
            self.out.write(b2a_base64(frame).decode().strip())
            self.out.write("\n")
            return True
        except OSError:
            return False

    def poll(self, timeout_ms):
        if not self.acks:
            return None
        import select

        if self._poll is None:
            self._poll = select.poll()
            self._poll.register(self.inp, select.POLLIN)
        while self._poll.poll(timeout_ms):
            ch = self.inp.read(1)
            if not ch:
                return None
            if ch != "\n":
                self._line += ch
                if len(self._line) > 1500:
                    self._line = ""  # not ours; resynchronise at the next newline
                continue
            line, self._line = self._line.strip(), ""
            if line.startswith(ACK_PREFIX):
                try:
                    return a2b_base64(line[len(ACK_PREFIX):])
                except ValueError:
                    pass
        return None

    def close(self):
        pass
