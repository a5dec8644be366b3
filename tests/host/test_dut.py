"""Dut.expect on a real pyserial port (the loop:// URL echoes what is written)."""

from __future__ import annotations

import pytest
import serial

from tinysense.node.dut import Dut, ExpectTimeout


@pytest.fixture
def loop_dut(tmp_path):
    port = serial.serial_for_url("loop://", timeout=0.1)
    dut = Dut(port, tmp_path / "console.log")
    yield dut
    dut.close()
    port.close()


def test_expect_across_split_crlf_and_utf8(loop_dut):
    text = "température 21.5 °C\r\nok\r\n".encode()
    cut = text.index("°".encode()) + 1  # inside the two-byte degree sign
    loop_dut.write(text[:cut])
    with pytest.raises(ExpectTimeout):
        loop_dut.expect(r"°C", 0.3)
    loop_dut.write(text[cut:-3])  # ends on a lone CR
    loop_dut.write(text[-3:])
    match = loop_dut.expect(r"température (\d+\.\d) °C\nok\n", 2)
    assert match.group(1) == "21.5"
    assert loop_dut.log_path.read_bytes() == text


def test_expect_consumes_up_to_the_match(loop_dut):
    loop_dut.write(b"tick 1\ntick 2\ntick 3\n")
    assert [m.group(1) for m in loop_dut.expect_lines(r"tick (\d)", 3, 2)] == ["1", "2", "3"]
    with pytest.raises(ExpectTimeout):
        loop_dut.expect(r"tick", 0.2)


def test_timeout_quotes_the_tail_and_names_the_log(loop_dut):
    loop_dut.write(b"x" * 2000 + b"boot: no sensor on i2c\n")
    with pytest.raises(ExpectTimeout) as info:
        loop_dut.expect(r"sensor ready", 0.5)
    message = str(info.value)
    assert message.startswith("expected /sensor ready/ within 0.5 s; received (last 600 of "
                              "2023 chars):")
    assert "boot: no sensor on i2c" in message and "x" * 700 not in message
    assert message.endswith(f"full console log: {loop_dut.log_path}")
