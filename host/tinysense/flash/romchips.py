"""What the virtual ROM loader answers for each chip: one table row per chip, no scattered ifs.

Each row is the chip as esptool sees it over the serial loader: how it is identified (the
ESP32 answers a READ_REG of the magic-value register; ESP32-S3/C3 answer GET_SECURITY_INFO
with their chip id), where its SPI flash controller, UART and eFuse read registers sit, and
the eFuse words that spell out a plausible part (package, revision, MAC). The values are
facts about the chips (ESP32/ESP32-S3/ESP32-C3 technical reference manuals, the ROM loader
docs); they are written here, not imported from esptool, so esptool's own reading of them
is a real check.

The MAC addresses are locally administered (first octet 0x02) so a virtual chip can never be
mistaken for a real Espressif part: 02:74:73 is "ts".
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class SpiRegs:
    """Offsets (from the SPI0/1 controller base) of the registers a user command uses."""

    base: int
    usr: int
    usr1: int
    usr2: int
    mosi_dlen: int
    miso_dlen: int
    w0: int
    cmd: int = 0x00
    addr: int = 0x04
    # ESP32's SPI controller takes a 24-bit address in the top bits of the ADDR register;
    # the ESP32-S3/C3 controllers take it in the low bits.
    addr_msb: bool = False

    def registers(self) -> dict[int, int]:
        """The controller registers a user command touches, at their reset value 0."""
        offsets = (self.cmd, self.addr, self.usr, self.usr1, self.usr2, self.mosi_dlen,
                   self.miso_dlen) + tuple(self.w0 + 4 * i for i in range(16))
        return {self.base + off: 0 for off in offsets}


@dataclasses.dataclass(frozen=True)
class RomChip:
    """One chip's face on the ROM serial loader."""

    name: str                      # esptool --chip name
    description: str
    magic_reg_value: int | None    # value at 0x40001000 (ESP32 identifies itself this way)
    chip_id: int | None            # GET_SECURITY_INFO chip id (None: command unsupported)
    spi: SpiRegs
    uart_clkdiv_reg: int
    apb_hz: int                    # UART clock in the ROM: the divider is apb_hz // baud
    # FLASH_BEGIN / FLASH_DEFL_BEGIN take 16 bytes on ESP32; later ROMs add an
    # "encrypted write" word (20 bytes).
    begin_param_sizes: tuple[int, ...]
    # READ_FLASH_SLOW (0x0e, 64 bytes per request) is in the ESP32 ROM only.
    read_flash_slow: bool
    registers: dict[int, int]      # eFuse words and other registers read at connect time


_MAGIC_REG = 0x40001000
ESP32_EFUSE = 0x3FF5A000           # EFUSE_BLK0_RDATAn: word n at + 4*n
S3_BLOCK1 = 0x60007000 + 0x44      # eFuse BLOCK1 (MAC + system data) on ESP32-S3
C3_BLOCK1 = 0x60008800 + 0x44      # ... on ESP32-C3


def _mac_words(last: int) -> tuple[int, int]:
    """(low 32 bits, high 16 bits) of MAC 02:74:73:00:00:<last>."""
    mac = bytes([0x02, 0x74, 0x73, 0x00, 0x00, last])
    return int.from_bytes(mac[2:], "big"), int.from_bytes(mac[:2], "big")


_E32_LO, _E32_HI = _mac_words(0x32)
_S3_LO, _S3_HI = _mac_words(0x53)
# SPI1 flash controller: the same register block on ESP32-S3 and ESP32-C3.
_SPI_S3_C3 = SpiRegs(base=0x60002000, usr=0x18, usr1=0x1C, usr2=0x20, mosi_dlen=0x24,
                     miso_dlen=0x28, w0=0x58)
_C3_LO, _C3_HI = _mac_words(0xC3)

CHIPS: dict[str, RomChip] = {
    "esp32": RomChip(
        name="esp32",
        description="ESP32-D0WD-V3 (revision v3.0)",
        magic_reg_value=0x00F01D83,
        chip_id=None,
        spi=SpiRegs(base=0x3FF42000, usr=0x1C, usr1=0x20, usr2=0x24, mosi_dlen=0x28,
                    miso_dlen=0x2C, w0=0x80, addr_msb=True),
        uart_clkdiv_reg=0x3FF40014,
        apb_hz=40_000_000,
        begin_param_sizes=(16,),
        read_flash_slow=True,
        registers={
            _MAGIC_REG: 0x00F01D83,
            ESP32_EFUSE + 4 * 0: 0,                        # FLASH_CRYPT_CNT = 0
            ESP32_EFUSE + 4 * 1: _E32_LO,                  # MAC low 32 bits
            ESP32_EFUSE + 4 * 2: _E32_HI,                  # MAC high 16 bits (CRC byte 0)
            # word 3: package D0WD (1 << 9), revision bit 0 (1 << 15)
            ESP32_EFUSE + 4 * 3: (1 << 9) | (1 << 15),
            ESP32_EFUSE + 4 * 4: 100,                      # CK8M frequency calibration
            ESP32_EFUSE + 4 * 5: 1 << 20,                  # revision bit 1
            ESP32_EFUSE + 4 * 6: 0,                        # no secure boot, coding "None"
            0x3FF66000 + 0x7C: 1 << 31,                    # APB_CTL_DATE: revision bit 2
            # RTC calibration as the ROM measured it: with CK8M=100 this means 40 MHz XTAL
            0x3FF5F06C: 1024 << 7,
            0x3FF44038: 0x13,        # GPIO_STRAP: boot:0x13, download mode; VDD_SDIO 3.3 V
            0x3FF48074: 0,           # RTC_CNTL_SDIO_CONF: no VDD_SDIO override
        },
    ),
    "esp32s3": RomChip(
        name="esp32s3",
        description="ESP32-S3 (QFN56) (revision v0.2)",
        magic_reg_value=None,
        chip_id=9,
        spi=_SPI_S3_C3,
        uart_clkdiv_reg=0x60000014,
        apb_hz=40_000_000,
        begin_param_sizes=(16, 20),
        read_flash_slow=False,
        registers={
            _MAGIC_REG: 0x00000009,  # not used for detection on ESP32-S3
            S3_BLOCK1 + 4 * 0: _S3_LO,
            S3_BLOCK1 + 4 * 1: _S3_HI,
            S3_BLOCK1 + 4 * 3: 2 << 18,                    # minor revision 2, package QFN56
            S3_BLOCK1 + 4 * 4: 0,                          # no in-package flash/PSRAM
            S3_BLOCK1 + 4 * 5: 0,                          # major revision 0
            # BLOCK0 read words: download/encryption flags, key purposes, secure boot: off
            0x60007030: 0, 0x60007034: 0, 0x60007038: 0, 0x6000703C: 0,
            0x60004038: 0x00,        # GPIO_STRAP: boot:0x0, download mode (USB/UART0)
        },
    ),
    "esp32c3": RomChip(
        name="esp32c3",
        description="ESP32-C3 (QFN32) (revision v0.4)",
        magic_reg_value=None,
        chip_id=5,
        spi=_SPI_S3_C3,
        uart_clkdiv_reg=0x60000014,
        apb_hz=40_000_000,
        begin_param_sizes=(16, 20),
        read_flash_slow=False,
        registers={
            _MAGIC_REG: 0x1B31506F,  # not used for detection on ESP32-C3
            C3_BLOCK1 + 4 * 0: _C3_LO,
            C3_BLOCK1 + 4 * 1: _C3_HI,
            C3_BLOCK1 + 4 * 3: 4 << 18,                    # minor revision 4, package QFN32
            C3_BLOCK1 + 4 * 4: 0,                          # no in-package flash
            C3_BLOCK1 + 4 * 5: 0,                          # major revision 0
            0x60008830: 0, 0x60008834: 0, 0x60008838: 0,   # BLOCK0: security all off
            0x60004038: 0x05,        # GPIO_STRAP: boot:0x5, download mode (USB/UART0/1)
        },
    ),
}


def rom_chip(name: str) -> RomChip:
    """The table row for an esptool chip name (KeyError names the chips we emulate)."""
    try:
        return CHIPS[name]
    except KeyError:
        raise KeyError(f"the virtual ROM loader emulates {', '.join(CHIPS)}, not {name!r}") \
            from None
