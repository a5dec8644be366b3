"""The uplink gateway: receives frames over UDP, MQTT or serial, stores them, acknowledges."""

from tinysense.gateway.core import REASONS, Accepted, Ack, Gateway
from tinysense.gateway.registry import DeviceKey, Registry, new_key
from tinysense.gateway.store import DEFAULT_DB, Store, open_db

__all__ = ["DEFAULT_DB", "REASONS", "Accepted", "Ack", "DeviceKey", "Gateway", "Registry",
           "Store", "new_key", "open_db"]
