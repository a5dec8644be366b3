"""Encrypted, counted, queued uplink: `Uplink(config)`; see docs/formats/uplink.md.

Modules: ccm (AES-CCM on cryptolib), frame, records, recdict (dict form: tests, tools), counter,
queue, udp, mqtt, serial, sender. Imports are lazy so `import tsnode.uplink.ccm` stays small.
"""


def Uplink(config=None, key=None, root="/", transport=None):  # noqa: N802 (a factory)
    from tsnode.uplink.sender import Uplink as _Uplink

    return _Uplink(config, key, root, transport)
