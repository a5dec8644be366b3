"""The ESP32 ROM serial loader protocol, device side: SLIP framing, commands, a NOR flash file.

It speaks the ROM side of the protocol in esptool's docs (advanced-topics/serial-protocol),
enough for real esptool run with `--before no-reset --no-stub` to detect the chip, write
(plain and zlib-compressed) and verify an image, for ESP32, ESP32-S3 and ESP32-C3:

- SLIP framing (0xC0 ends a frame; 0xDB 0xDC / 0xDB 0xDD escape 0xC0 / 0xDB).
- Request  `00 op len:u16 checksum:u32 data`; response `01 op len:u16 value:u32 data`,
  data ending in the ROM's 4 status bytes (status, error, 0, 0).
- SYNC is answered 8 times; READ_REG/WRITE_REG act on a register file seeded from
  romchips.CHIPS; writes to the SPI controller's CMD register run a user command against
  the virtual flash chip (RDID, RDSR, ...), as the ROM's SPI peripheral would.
- FLASH_BEGIN / FLASH_DEFL_BEGIN erase their region up front (4 KiB sectors, 0xFF) as the
  ROM does; FLASH_DATA / FLASH_DEFL_DATA check the checksum and sequence number and program
  NOR-style (a write can only clear bits); SPI_FLASH_MD5 answers 32 hex characters.
- What the ROM does not have (ERASE_FLASH, READ_FLASH, ...: stub-only commands) is refused
  with status 1 / error 0x05, as the ROM does; esptool then says the command needs the stub.
  Every request the loader cannot serve is recorded in `RomLoader.unhandled`.
- esptool's flasher stub: the virtual chip cannot execute Xtensa/RISC-V code, but when
  MEM_END starts exactly the stub esptool ships for this chip (compared byte for byte with
  esptool's stub_flasher/*/<chip>.json), it answers "OHAI" and from then on speaks the stub's
  side of the protocol (2 status bytes, SYNC value 0, 16 KiB blocks, FLASH_DEFL_BEGIN with
  the uncompressed size, binary MD5, ERASE_FLASH, ERASE_REGION, READ_FLASH with its data
  frames and digest, RUN_USER_CODE). So plain `esptool write-flash` (with the stub) works too.
  Any other code started with MEM_END is refused as not executable.

`RomProtocol.handle(packet)` answers one request with the response packets; it knows no
transport, so tests drive it with byte strings. tinysense.flash.romloader.RomLoader serves it
on a pty or a TCP port.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import struct
import zlib
from pathlib import Path

import esptool

from tinysense.flash.romchips import RomChip

log = logging.getLogger(__name__)

# Opcodes (esptool docs, serial protocol: "Supported by ROM loader").
FLASH_BEGIN, FLASH_DATA, FLASH_END = 0x02, 0x03, 0x04
MEM_BEGIN, MEM_END, MEM_DATA = 0x05, 0x06, 0x07
SYNC, WRITE_REG, READ_REG = 0x08, 0x09, 0x0A
SPI_SET_PARAMS, SPI_ATTACH, CHANGE_BAUDRATE = 0x0B, 0x0D, 0x0F
FLASH_DEFL_BEGIN, FLASH_DEFL_DATA, FLASH_DEFL_END = 0x10, 0x11, 0x12
SPI_FLASH_MD5, GET_SECURITY_INFO = 0x13, 0x14
READ_FLASH_SLOW = 0x0E                                   # ESP32 ROM only
# Flasher stub only (esptool's stub; the ROM refuses them).
ERASE_FLASH, ERASE_REGION, READ_FLASH, RUN_USER_CODE = 0xD0, 0xD1, 0xD2, 0xD3

# ROM error codes (second status byte).
ERR_INVALID = 0x05      # received message is invalid (parameters or length)
ERR_FAILED = 0x06       # failed to act on received message
ERR_CRC = 0x07          # invalid CRC (checksum) in message
ERR_DEFLATE = 0x0B      # inflate error

_CHECKSUM_SEED = 0xEF
_SECTOR = 0x1000
_SYNC_BODY = b"\x07\x07\x12\x20" + 32 * b"\x55"
_SYNC_VALUE = 0x20120707            # non-zero: "this is the ROM" (the stub answers 0)
_SPI_CMD_USR = 1 << 18

# SPI flash commands the virtual flash chip answers (JEDEC / common NOR commands).
_RDID, _RDSR, _RDSR2, _RDSR3, _RDSFDP = 0x9F, 0x05, 0x35, 0x15, 0x5A
# Commands that return nothing: reset enable/reset, power-down and release, write enable.
_NO_DATA = {0x66, 0x99, 0xB9, 0xAB, 0x79, 0xFF, 0x06, 0x04}
_WINBOND = 0xEF                     # answers RDID as a W25Q-type part of the board's size
# JESD216 SFDP: "SFDP", revision 1.6, one parameter header (basic table, 16 dwords at 0x30).
_SFDP = (b"SFDP\x06\x01\x00\xff" + b"\x00\x06\x01\x10\x30\x00\x00\xff").ljust(0x30, b"\xff")


def slip_encode(packet: bytes) -> bytes:
    return b"\xc0" + packet.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + b"\xc0"


class SlipDecoder:
    """Feed bytes, get whole packets; bytes outside a frame are dropped (line noise)."""

    def __init__(self) -> None:
        self._buf: bytearray | None = None
        self._escape = False

    def feed(self, data: bytes) -> list[bytes]:
        packets = []
        for b in data:
            if self._buf is None:
                if b == 0xC0:
                    self._buf = bytearray()
                continue
            if self._escape:
                self._escape = False
                self._buf.append({0xDC: 0xC0, 0xDD: 0xDB}.get(b, b))
            elif b == 0xDB:
                self._escape = True
            elif b == 0xC0:
                if self._buf:
                    packets.append(bytes(self._buf))
                    self._buf = None
                # an empty frame (C0 C0) is a frame boundary: stay in frame
            else:
                self._buf.append(b)
        return packets


class FlashFile:
    """A NOR flash chip backed by a file of exactly `size` bytes (erased = 0xFF)."""

    def __init__(self, path: str | os.PathLike, size: int) -> None:
        self.path = Path(path)
        self.size = size
        if not self.path.exists() or self.path.stat().st_size != size:
            old = self.path.read_bytes()[:size] if self.path.exists() else b""
            self.path.write_bytes(old + b"\xff" * (size - len(old)))
        self._fd = os.open(self.path, os.O_RDWR)

    def close(self) -> None:
        os.close(self._fd)

    def read(self, offset: int, length: int) -> bytes:
        return os.pread(self._fd, length, offset)

    def erase(self, offset: int, length: int) -> None:
        """Erase every 4 KiB sector touching [offset, offset + length)."""
        start = offset - offset % _SECTOR
        end = min(self.size, -(-(offset + length) // _SECTOR) * _SECTOR)
        for pos in range(start, end, 0x10000):
            os.pwrite(self._fd, b"\xff" * min(0x10000, end - pos), pos)

    def program(self, offset: int, data: bytes) -> None:
        """Program as NOR flash does: bits can only go from 1 to 0."""
        old = self.read(offset, len(data))
        merged = (int.from_bytes(old, "little") & int.from_bytes(data, "little"))
        os.pwrite(self._fd, merged.to_bytes(len(data), "little"), offset)


def _is_esptool_stub(chip: str, ram: dict[int, bytes], entry: int) -> bool:
    """Whether RAM holds exactly one of the flasher stubs esptool ships for `chip`."""
    root = Path(esptool.__file__).parent / "targets" / "stub_flasher"
    for path in sorted(root.glob(f"*/{chip}.json")):
        stub = json.loads(path.read_text())
        segments = {stub["text_start"]: base64.b64decode(stub["text"])}
        if stub.get("data") is not None:
            segments[stub["data_start"]] = base64.b64decode(stub["data"])
        if stub["entry"] == entry and segments == ram:
            return True
    return False


class RomError(Exception):
    def __init__(self, code: int, why: str) -> None:
        super().__init__(why)
        self.code = code


class RomProtocol:
    """The ROM loader's command handler: one request packet in, response packets out."""

    def __init__(self, chip: RomChip, flash: FlashFile, baud: int = 115200) -> None:
        self.chip = chip
        self.flash = flash
        self.rom_baud = baud
        self.regs: dict[int, int] = {}
        self._power_on()
        self.unhandled: list[str] = []
        self.ram: dict[int, bytes] = {}
        self.reboots = 0
        self._write: dict | None = None   # the FLASH_BEGIN / FLASH_DEFL_BEGIN in progress
        self._mem: dict | None = None
        self._op = 0
        self.stub = False                 # running (the emulation of) esptool's flasher stub
        self._handlers = {
            SYNC: self._sync, READ_REG: self._read_reg, WRITE_REG: self._write_reg,
            GET_SECURITY_INFO: self._security_info, SPI_ATTACH: self._spi_attach,
            SPI_SET_PARAMS: self._spi_set_params, CHANGE_BAUDRATE: self._change_baud,
            FLASH_BEGIN: self._flash_begin, FLASH_DATA: self._flash_data,
            FLASH_END: self._flash_end, FLASH_DEFL_BEGIN: self._flash_begin,
            FLASH_DEFL_DATA: self._flash_data, FLASH_DEFL_END: self._flash_end,
            SPI_FLASH_MD5: self._md5, MEM_BEGIN: self._mem_begin, MEM_DATA: self._mem_data,
            MEM_END: self._mem_end, READ_FLASH_SLOW: self._read_flash_slow,
            ERASE_FLASH: self._erase_flash, ERASE_REGION: self._erase_region,
            READ_FLASH: self._read_flash, RUN_USER_CODE: self._run_user_code,
        }
        self._stub_only = {ERASE_FLASH, ERASE_REGION, READ_FLASH, RUN_USER_CODE}

    # -- framing -----------------------------------------------------------------------------

    def _response(self, op: int, value: int = 0, data: bytes = b"", status: int = 0,
                  error: int = 0) -> bytes:
        # The ROM ends a response with 4 status bytes (status, error, 0, 0); the stub with 2.
        body = data + bytes([status, error]) + (b"" if self.stub else b"\0\0")
        return struct.pack("<BBHI", 1, op, len(body), value) + body

    def handle(self, packet: bytes) -> list[bytes]:
        """Answer one decoded request packet (without SLIP framing)."""
        if len(packet) < 8 or packet[0] != 0x00:
            return []  # not a request (the ROM ignores it)
        _, op, size, checksum = struct.unpack_from("<BBHI", packet)
        data = packet[8:]
        handler = self._handlers.get(op)
        if op in self._stub_only and not self.stub:
            handler = None
        if op == READ_FLASH_SLOW and (self.stub or not self.chip.read_flash_slow):
            handler = None
        if handler is None:
            self._note(f"unsupported command 0x{op:02x} ({len(data)} bytes)")
            return [self._response(op, status=1, error=ERR_INVALID)]
        if size != len(data):
            return [self._response(op, status=1, error=ERR_INVALID)]
        self._op = op
        try:
            result = handler(data, checksum)
        except RomError as exc:
            log.info("rom loader: op 0x%02x failed: %s", op, exc)
            return [self._response(op, status=1, error=exc.code)]
        except (struct.error, ValueError) as exc:
            log.info("rom loader: op 0x%02x: bad parameters: %s", op, exc)
            return [self._response(op, status=1, error=ERR_INVALID)]
        if isinstance(result, list):
            return result
        value, body = result
        return [self._response(op, value, body)]

    def _power_on(self) -> None:
        """Registers as after a reset into download mode, at the ROM's baud rate."""
        self.regs = {**self.chip.spi.registers(), **self.chip.registers}
        self._set_baud(self.rom_baud)

    def _reboot(self) -> None:
        """The chip resets; its strapping pin holds it in download mode, so it comes back
        to the ROM loader (the stub, RAM and register changes are gone)."""
        self.reboots += 1
        self.stub = False
        self.ram.clear()
        self._write = self._mem = None
        self._power_on()

    def _note(self, what: str) -> None:
        self.unhandled.append(what)
        log.warning("virtual %s ROM loader: %s", self.chip.name, what)

    # -- commands ----------------------------------------------------------------------------

    def _spi_attach(self, data: bytes, _chk: int):
        # The ROM takes (pins, is_legacy); the stub only the pins word.
        if len(data) != (4 if self.stub else 8):
            raise RomError(ERR_INVALID, f"{len(data)}-byte SPI_ATTACH parameters")
        return 0, b""

    def _sync(self, data: bytes, _chk: int):
        if data != _SYNC_BODY:
            raise RomError(ERR_INVALID, "bad SYNC body")
        return [self._response(SYNC, 0 if self.stub else _SYNC_VALUE)] * 8

    def _read_reg(self, data: bytes, _chk: int):
        (addr,) = struct.unpack("<I", data)
        if addr not in self.regs:
            self._note(f"READ_REG 0x{addr:08x} (unknown register, answered 0)")
        return self.regs.get(addr, 0), b""

    def _write_reg(self, data: bytes, _chk: int):
        if not data or len(data) % 16:
            raise RomError(ERR_INVALID, "WRITE_REG takes 16-byte (addr, value, mask, delay)s")
        for addr, value, mask, _delay in struct.iter_unpack("<IIII", data):
            old = self.regs.get(addr, 0)
            self.regs[addr] = (old & ~mask) | (value & mask)
            self._register_written(addr)
        return 0, b""

    def _register_written(self, addr: int) -> None:
        spi = self.chip.spi
        if addr == spi.base + spi.cmd and self.regs[addr] & _SPI_CMD_USR:
            self._spi_user_command()
            self.regs[addr] &= ~_SPI_CMD_USR  # the controller clears USR when done

    def _spi_user_command(self) -> None:
        """Run the command byte in USR2 against the virtual flash; answer in W0."""
        spi = self.chip.spi
        command = self.regs[spi.base + spi.usr2] & 0xFF
        miso_bits = self.regs[spi.base + spi.miso_dlen] + 1
        capacity = self.flash.size.bit_length() - 1       # 4 MiB -> 0x16 (JEDEC)
        if command == _RDID:
            answer = _WINBOND | (0x40 << 8) | (capacity << 16)
        elif command in (_RDSR, _RDSR2, _RDSR3):
            answer = 0                                     # idle, no write protection
        elif command == _RDSFDP:
            addr = self.regs[spi.base + spi.addr]
            addr = addr >> 8 if spi.addr_msb else addr & 0xFFFFFF
            data = _SFDP[addr:addr + 4].ljust(4, b"\xff")
            answer = int.from_bytes(data, "little") & ((1 << min(miso_bits, 32)) - 1)
        elif command in _NO_DATA:
            return
        else:
            self._note(f"SPI flash command 0x{command:02x} (answered 0)")
            answer = 0
        self.regs[spi.base + spi.w0] = answer

    def _security_info(self, data: bytes, _chk: int):
        if self.chip.chip_id is None:  # the ESP32 ROM has no GET_SECURITY_INFO
            raise RomError(ERR_INVALID, "GET_SECURITY_INFO is not in this ROM")
        # flags, flash_crypt_cnt, 7 key purposes, chip id, API version
        return 0, struct.pack("<IB7BII", 0, 0, *([0] * 7), self.chip.chip_id, 0)

    def _spi_set_params(self, data: bytes, _chk: int):
        _fl_id, total, _block, sector, page, _mask = struct.unpack("<6I", data)
        if total > self.flash.size:
            log.info("rom loader: SPI_SET_PARAMS says %d bytes, the chip has %d",
                     total, self.flash.size)
        if sector != _SECTOR or page != 256:
            raise RomError(ERR_INVALID, "unsupported sector/page size")
        return 0, b""

    def _set_baud(self, baud: int) -> None:
        self.baud = baud
        self.regs[self.chip.uart_clkdiv_reg] = self.chip.apb_hz // baud

    def _change_baud(self, data: bytes, _chk: int):
        new, _old = struct.unpack("<II", data)
        if new <= 0:
            raise RomError(ERR_INVALID, "baud rate 0")
        # The reply goes out at the old rate, then the UART switches (nothing to do on a pty).
        response = [self._response(CHANGE_BAUDRATE)]
        self._set_baud(new)
        return response

    def _flash_begin(self, data: bytes, _chk: int):
        if len(data) not in ((16, 20) if self.stub else self.chip.begin_param_sizes):
            raise RomError(ERR_INVALID, f"{len(data)}-byte FLASH_BEGIN parameters")
        size, blocks, block_size, offset = struct.unpack_from("<IIII", data)
        if offset % _SECTOR or offset + size > self.flash.size or block_size == 0:
            raise RomError(ERR_FAILED, f"region 0x{offset:x}+0x{size:x} outside the flash")
        self.flash.erase(offset, size)
        self._write = {"offset": offset, "size": size, "blocks": blocks,
                       "block_size": block_size, "seq": 0, "pos": offset,
                       "inflate": zlib.decompressobj(),
                       "deflate": self._op == FLASH_DEFL_BEGIN}
        return 0, b""

    def _flash_data(self, data: bytes, checksum: int):
        w = self._write
        if w is None:
            raise RomError(ERR_FAILED, "FLASH_DATA without FLASH_BEGIN")
        if (self._op == FLASH_DEFL_DATA) != w["deflate"]:
            raise RomError(ERR_FAILED, "compressed and plain flash writes mixed")
        size, seq, _, _ = struct.unpack_from("<IIII", data)
        block = data[16:]
        if size != len(block):
            raise RomError(ERR_INVALID, "block length does not match its header")
        state = _CHECKSUM_SEED
        for b in block:
            state ^= b
        if state != checksum & 0xFF:
            raise RomError(ERR_CRC, f"checksum of block {seq}")
        if seq != w["seq"] or seq >= w["blocks"]:
            raise RomError(ERR_FAILED, f"block {seq} out of sequence (expected {w['seq']})")
        if w["deflate"]:
            try:
                block = w["inflate"].decompress(block)
            except zlib.error as exc:
                raise RomError(ERR_DEFLATE, str(exc)) from None
        elif len(block) > w["block_size"]:
            raise RomError(ERR_INVALID, "block larger than the announced block size")
        if w["pos"] + len(block) > w["offset"] + max(w["size"], w["blocks"] * w["block_size"]):
            raise RomError(ERR_FAILED, "data beyond the erased region")
        if w["pos"] + len(block) > self.flash.size:
            raise RomError(ERR_FAILED, "data beyond the end of flash")
        self.flash.program(w["pos"], block)
        w["pos"] += len(block)
        w["seq"] += 1
        return 0, b""

    def _flash_end(self, data: bytes, _chk: int):
        (stay,) = struct.unpack("<I", data)
        self._write = None
        # The ROM leaves download mode here (0: reboot, 1: run the app); the stub stays
        # unless told to reboot. The virtual chip's strapping pin holds it in download mode,
        # so leaving means coming back to the ROM loader, as after a reset.
        response = [self._response(self._op)]
        if not stay or not self.stub:
            self._reboot()
            log.info("rom loader: FLASH_END (%s): reset, back in the ROM loader",
                     "run app" if stay else "reboot")
        return response

    def _md5(self, data: bytes, _chk: int):
        addr, size, _, _ = struct.unpack("<IIII", data)
        if addr + size > self.flash.size:
            raise RomError(ERR_FAILED, "MD5 region outside the flash")
        digest = hashlib.md5()
        for pos in range(addr, addr + size, 0x10000):
            digest.update(self.flash.read(pos, min(0x10000, addr + size - pos)))
        # The ROM answers 32 hex characters, the stub the 16 raw bytes.
        return 0, digest.digest() if self.stub else digest.hexdigest().encode()

    def _read_flash_slow(self, data: bytes, _chk: int):
        offset, length = struct.unpack("<II", data)
        if length > 64 or offset + length > self.flash.size:
            raise RomError(ERR_INVALID, "READ_FLASH_SLOW reads at most 64 bytes inside flash")
        return 0, self.flash.read(offset, length).ljust(64, b"\xff")

    def _erase_flash(self, data: bytes, _chk: int):
        self.flash.erase(0, self.flash.size)
        return 0, b""

    def _erase_region(self, data: bytes, _chk: int):
        offset, size = struct.unpack("<II", data)
        if offset % _SECTOR or size % _SECTOR or offset + size > self.flash.size:
            raise RomError(ERR_FAILED, "ERASE_REGION needs sector-aligned bounds inside flash")
        self.flash.erase(offset, size)
        return 0, b""

    def _read_flash(self, data: bytes, _chk: int):
        """The stub streams the data in packet_size SLIP frames, then the MD5 (16 bytes).

        The host acknowledges each frame with the byte count so far (4-byte frames, which
        handle() ignores); a pty or socket buffer is all the flow control needed here.
        """
        offset, length, packet, _inflight = struct.unpack("<IIII", data)
        if offset + length > self.flash.size or packet == 0:
            raise RomError(ERR_FAILED, "READ_FLASH outside the flash")
        content = self.flash.read(offset, length)
        frames = [self._response(READ_FLASH)]
        frames += [content[i:i + packet] for i in range(0, length, packet)]
        return frames + [hashlib.md5(content).digest()]

    def _run_user_code(self, data: bytes, _chk: int):
        self._reboot()
        return []  # no response: the chip is off running the app

    def _mem_commit(self) -> None:
        if self._mem is not None:
            self.ram[self._mem["offset"]] = bytes(self._mem["data"])
            self._mem = None

    def _mem_begin(self, data: bytes, _chk: int):
        size, blocks, block_size, offset = struct.unpack("<IIII", data)
        self._mem_commit()
        self._mem = {"offset": offset, "size": size, "blocks": blocks, "seq": 0,
                     "block_size": block_size, "data": bytearray()}
        return 0, b""

    def _mem_data(self, data: bytes, checksum: int):
        m = self._mem
        if m is None:
            raise RomError(ERR_FAILED, "MEM_DATA without MEM_BEGIN")
        size, seq, _, _ = struct.unpack_from("<IIII", data)
        block = data[16:]
        state = _CHECKSUM_SEED
        for b in block:
            state ^= b
        if size != len(block) or state != checksum & 0xFF or seq != m["seq"]:
            raise RomError(ERR_CRC, f"RAM block {seq}")
        if len(m["data"]) + len(block) > m["size"]:
            raise RomError(ERR_FAILED, "more RAM data than MEM_BEGIN announced")
        m["data"] += block
        m["seq"] += 1
        return 0, b""

    def _mem_end(self, data: bytes, _chk: int):
        no_entry, entry = struct.unpack("<II", data)
        self._mem_commit()
        if no_entry:
            return 0, b""
        if _is_esptool_stub(self.chip.name, self.ram, entry):
            self.ram.clear()
            done = self._response(MEM_END)      # the ROM's answer, then the stub runs
            self.stub = True
            return [done, b"OHAI"]              # the stub's greeting is its first frame
        self._note(f"MEM_END would run code at 0x{entry:08x}, which is not esptool's flasher "
                   "stub: the virtual chip cannot execute it")
        raise RomError(ERR_FAILED, "cannot execute uploaded code")
