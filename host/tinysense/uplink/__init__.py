"""Host side of the uplink frame format v1 (spec: docs/formats/uplink.md)."""

from tinysense.formats.frame import (
    FRAME_VERSION, HEADER_LEN, MAX_FRAME, MAX_PAYLOAD, MIN_FRAME, PTYPE_ACK, PTYPE_RECORDS,
    TAG_LEN, FrameError, Header, make_nonce, open_frame, parse_header, seal,
)
from tinysense.formats.payload import (
    Batch, PayloadError, decode_ack, decode_batch, decode_records, encode_ack, encode_records,
)

__all__ = [
    "FRAME_VERSION", "HEADER_LEN", "MAX_FRAME", "MAX_PAYLOAD", "MIN_FRAME", "PTYPE_ACK",
    "PTYPE_RECORDS", "TAG_LEN", "Batch", "FrameError", "Header", "PayloadError",
    "decode_ack", "decode_batch", "decode_records", "encode_ack", "encode_records",
    "make_nonce", "open_frame", "parse_header", "seal",
]
