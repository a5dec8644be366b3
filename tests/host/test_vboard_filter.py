"""The virtual board's output filter: what clients see of the unix port's output."""

from __future__ import annotations

import pytest

from tinysense.targets.supervisor import catches_sigint
from tinysense.targets.vboard_output import EXIT_PREFIX, RAW_BANNER, SENTINEL, UP, OutputFilter

BANNER = (b'MicroPython 9458e3a23f on 2026-07-05; linux [GCC 14.2.1] version\r\n'
          b'Type "help()" for more information.\r\n>>> ')


def feed_all(f: OutputFilter, chunks) -> bytes:
    return b"".join(f.feed(c) for c in chunks)


def split_every(data: bytes, n: int) -> list[bytes]:
    return [data[i:i + n] for i in range(0, len(data), n)]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_friendly_boot_hides_sentinel_and_makes_crlf(size):
    stream = UP + b"boot\nmain\r\n" + SENTINEL + BANNER + b"print(1)\r\n1\n>>> "
    f = OutputFilter()
    out = feed_all(f, split_every(stream, size))
    assert out == b"boot\r\nmain\r\n" + BANNER + b"print(1)\r\n1\r\n>>> "
    assert f.up and f.booted and f.phase == "run" and not f.raw_mode


@pytest.mark.parametrize("size", [1, 5, 1000])
def test_raw_restart_drops_the_banner_until_raw_repl(size):
    stream = b"from boot.py\n" + SENTINEL + BANNER + b"\r\n" + RAW_BANNER + b">OK1\n\x04\x04>"
    f = OutputFilter(raw_restart=True, raw_mode=True)
    out = feed_all(f, split_every(stream, size))
    assert out == b"from boot.py\r\n" + RAW_BANNER + b">OK1\r\n\x04\x04>"
    assert f.raw_mode


def test_mode_follows_the_last_banner():
    f = OutputFilter()
    f.feed(SENTINEL + BANNER)
    assert not f.raw_mode
    f.feed(b"\r\n" + RAW_BANNER[:10])
    f.feed(RAW_BANNER[10:] + b">")
    assert f.raw_mode
    f.feed(b"OK\x04\x04>\r\n" + BANNER)  # Ctrl-B back to the friendly REPL
    assert not f.raw_mode


def test_sentinel_after_boot_is_ordinary_output():
    f = OutputFilter()
    f.feed(SENTINEL)
    assert f.feed(b"a\x00\x00b") == b"a\x00\x00b"  # NULs in program output pass through


def test_exit_request_is_hidden_and_parsed():
    f = OutputFilter()
    out = feed_all(f, split_every(b"crash\n" + EXIT_PREFIX + b"99\x00\x00", 3))
    assert out == b"crash\r\n" and f.exit_code == 99


def test_catches_sigint_of_this_process():
    import os
    import signal

    previous = signal.signal(signal.SIGINT, lambda *a: None)
    try:
        assert catches_sigint(os.getpid())
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        assert not catches_sigint(os.getpid())
    finally:
        signal.signal(signal.SIGINT, previous)
    assert not catches_sigint(2 ** 22 + 12345)  # no such process
