"""MQTT transport (paho-mqtt, MQTT 3.1.1): tinysense/<id>/up in, tinysense/<id>/ack out."""

from __future__ import annotations

import logging
import socket
import threading
from urllib.parse import parse_qs, urlsplit

from tinysense.errors import TinysenseError
from tinysense.gateway.core import Ack
from tinysense.gateway.ingest import IngestLoop

log = logging.getLogger("tinysense.gateway")

DEFAULT_MQTT_PORT = 1883


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
