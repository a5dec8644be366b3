"""Runs a Gateway behind its transports: one ingest thread fed by UDP, MQTT and serial readers.

Transports only move bytes: each received frame is submitted to the IngestLoop with a
`reply` callable (sends an Ack back the way the frame came) and an optional `done` callable
(for MQTT: the PUBACK to the broker). The ingest thread takes whatever has queued up (up to
`max_batch` frames), runs Gateway.handle_batch (one SQLite commit), and only then calls the
replies and `done`: nothing is acknowledged, to the node or to the broker, before it is
durable. Under light load a batch is one frame; under heavy load batches grow and the
fsync is shared.
"""

from __future__ import annotations

import base64
import binascii
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from tinysense.errors import TinysenseError
from tinysense.gateway.core import Ack, Gateway

log = logging.getLogger("tinysense.gateway")

DEFAULT_UDP_PORT = 47800
DEFAULT_MQTT_PORT = 1883
SERIAL_FRAME_PREFIX = b"TSF1 "
SERIAL_ACK_PREFIX = b"TSA1 "
MAX_LINE = 4096  # a max frame is 1392 base64 chars; anything longer is not a frame line

Reply = Callable[[Ack], None]


class IngestLoop:
    """The single thread that owns the Gateway; transports call `submit` from any thread."""

    def __init__(self, gateway: Gateway, max_batch: int = 1024):
        self.gateway = gateway
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def submit(self, frame: bytes | None, source: str, reply: Reply | None = None,
               done: Callable[[], None] | None = None) -> None:
        """Queue a received frame (None = the transport could not decode its framing)."""
        self._queue.put([(frame, source, reply, done)])

    def submit_many(self, items: list[tuple]) -> None:
        """Queue several (frame, source, reply, done) at once (cheaper per frame)."""
        if items:
            self._queue.put(items)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gateway-ingest", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Process everything already queued, then stop."""
        self._stop.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        q = self._queue
        while True:
            try:
                item = q.get(timeout=1.0)
            except queue.Empty:
                self._flush()  # idle: write pending rejection counts
                continue
            batch: list[tuple] = []
            stopping = False
            while True:
                if item is None:
                    stopping = True
                else:
                    batch += item
                if len(batch) >= self.max_batch:
                    break
                try:
                    item = q.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._process(batch)
            if stopping and self._stop.is_set() and q.empty():
                self._flush()
                return

    def _flush(self) -> None:
        try:
            self.gateway.flush()
        except Exception:  # noqa: BLE001 - counts are statistics; never stop ingest for them
            log.exception("could not write rejection counts")

    def _process(self, batch: list) -> None:
        try:
            acks = self.gateway.handle_batch([(f, s) for f, s, _, _ in batch])
        except Exception:  # handle_batch does not raise; this is a last line of defence
            log.exception("ingest batch failed")
            return
        replies: dict[str, Reply] = {}
        for _, source, reply, _ in batch:
            if reply is not None:
                replies[source] = reply
        for ack in acks:
            reply = replies.get(ack.source)
            if reply is None:
                continue
            try:
                reply(ack)
            except Exception as exc:  # a lost ack is recoverable: the node re-sends
                log.warning("could not send ack to %s: %s", ack.source, exc)
        if self.gateway.last_commit_ok:
            for _, _, _, done in batch:
                if done is not None:
                    try:
                        done()
                    except Exception as exc:  # noqa: BLE001
                        log.warning("transport acknowledgement failed: %s", exc)


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


def parse_mqtt_url(url: str) -> dict:
    """mqtt://[user[:password]@]host[:port][?client_id=ID] -> connection settings."""
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise TinysenseError(f"bad MQTT URL {url!r}; expected mqtt://HOST[:PORT], e.g. "
                             "mqtt://127.0.0.1:1883")
    query = parse_qs(parts.query)
    return {"host": parts.hostname, "port": parts.port or DEFAULT_MQTT_PORT,
            "username": parts.username, "password": parts.password,
            "client_id": query.get("client_id", [f"tinysense-gateway-{socket.gethostname()}"])[0]}


def up_topic(device_id: int | None = None) -> str:
    return "tinysense/+/up" if device_id is None else f"tinysense/{device_id:08x}/up"


def ack_topic(device_id: int) -> str:
    return f"tinysense/{device_id:08x}/ack"


class MqttTransport:
    """Subscribes to tinysense/+/up (QoS 1), publishes acks to tinysense/<id>/ack (QoS 1).

    The broker's PUBACK for a frame is sent only after the batch holding it committed
    (paho manual_ack), and the session is persistent (clean_session False, a stable client
    id): if the gateway dies first, the broker delivers the frame again after a restart.
    """

    def __init__(self, loop: IngestLoop, url: str, connect_timeout: float = 10.0):
        import paho.mqtt.client as mqtt

        self.loop = loop
        self.settings = parse_mqtt_url(url)
        self.connected = threading.Event()
        self._connect_rc = None
        client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                             client_id=self.settings["client_id"], clean_session=False,
                             protocol=mqtt.MQTTv311, manual_ack=True)
        if self.settings["username"]:
            client.username_pw_set(self.settings["username"], self.settings["password"])
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.max_queued_messages_set(0)
        self.client = client
        self.connect_timeout = connect_timeout

    def start(self) -> None:
        host, port = self.settings["host"], self.settings["port"]
        try:
            self.client.connect(host, port, keepalive=30)
        except OSError as exc:
            raise TinysenseError(f"cannot reach the MQTT broker at {host}:{port}: {exc}; "
                                 "is mosquitto running? (--mqtt mqtt://HOST:PORT)") from None
        self.client.loop_start()
        if not self.connected.wait(self.connect_timeout):
            self.client.loop_stop()
            raise TinysenseError(f"MQTT broker at {host}:{port} did not accept the connection "
                                 f"(result {self._connect_rc}); check the URL and credentials")

    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        self._connect_rc = reason_code
        if reason_code.is_failure:
            log.error("MQTT connect refused: %s", reason_code)
            return
        client.subscribe(up_topic(), qos=1)
        self.connected.set()

    def _on_message(self, client, userdata, msg) -> None:
        mid, qos = msg.mid, msg.qos

        def done() -> None:
            if qos:
                client.ack(mid, qos)
        self.loop.submit(bytes(msg.payload), f"mqtt:{msg.topic}", self._publish_ack, done)

    def _publish_ack(self, ack: Ack) -> None:
        self.client.publish(ack_topic(ack.device_id), ack.frame, qos=1)

    def stop_receiving(self) -> None:
        """Unsubscribe; the connection stays up so queued frames can still be acked."""
        if self.connected.is_set():
            self.client.unsubscribe(up_topic())

    def close(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()


class SerialTransport:
    """Reads "TSF1 <base64 frame>" lines from a serial port or any pyserial URL.

    Other lines (the node's console output) are ignored. With `acks=True` each ack is
    written back as "TSA1 <base64 ack>\\n" (only useful when the node reads its UART for
    acks; a MicroPython REPL would take it as input, so it is off by default).
    """

    def __init__(self, loop: IngestLoop, url: str, baud: int = 115200, acks: bool = False):
        import serial

        self.loop = loop
        self.url = url
        try:
            self.port = serial.serial_for_url(url, baudrate=baud, timeout=0.2)
        except (serial.SerialException, ValueError) as exc:
            raise TinysenseError(f"cannot open serial port {url}: {exc}; expected a device "
                                 "such as /dev/ttyUSB0 or a pyserial URL (socket://HOST:PORT)"
                                 ) from None
        self.acks = acks
        self.lines_ignored = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._write_lock = threading.Lock()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gateway-serial", daemon=True)
        self._thread.start()

    def _reply(self, ack: Ack) -> None:
        line = SERIAL_ACK_PREFIX + base64.b64encode(ack.frame) + b"\n"
        with self._write_lock:
            self.port.write(line)

    def _run(self) -> None:
        source = f"serial:{self.url}"
        reply = self._reply if self.acks else None
        buf = bytearray()
        while not self._stop.is_set():
            try:
                chunk = self.port.read(self.port.in_waiting or 1)
            except Exception as exc:  # noqa: BLE001 - port unplugged, pty closed...
                if not self._stop.is_set():
                    log.error("serial port %s failed: %s", self.url, exc)
                return
            if not chunk:
                continue
            buf += chunk
            while True:
                end = buf.find(b"\n")
                if end < 0:
                    if len(buf) > MAX_LINE:  # no newline in sight: not a frame line
                        del buf[:]
                    break
                line = bytes(buf[:end]).strip()
                del buf[:end + 1]
                self._line(line, source, reply)

    def _line(self, line: bytes, source: str, reply) -> None:
        start = line.find(SERIAL_FRAME_PREFIX)
        if start < 0:
            self.lines_ignored += 1
            return
        text = line[start + len(SERIAL_FRAME_PREFIX):]
        if len(text) > MAX_LINE:
            self.loop.submit(None, source)
            return
        try:
            frame = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            frame = None  # counted as bad_encoding by the gateway
        self.loop.submit(frame, source, reply)

    def stop_receiving(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)

    def close(self) -> None:
        self.stop_receiving()
        self.port.close()
