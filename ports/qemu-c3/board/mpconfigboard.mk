# tinysense: an ESP32-C3-class node on MicroPython's ports/qemu (QEMU `virt`, rv32imc).
# Differences from the port's VIRT_RV32 board, each for the C3:
# - plain rv32imc native code: the C3 has neither Zba nor Zcmp (our patch lets the board
#   turn MICROPY_EMIT_RV32_ZBA/ZCMP off; QEMU 7.2 cannot run Zcmp either);
# - the GC heap of board_configs/ESP32_GENERIC_C3.toml (TSC3_HEAP_SIZE, set by the caller);
# - cryptolib (AES ECB/CBC from axTLS's aes.c), as stock esp32 firmware has it (mbedTLS);
# - littlefs2 on a host file (usermod tsflash) mounted at /, ROMFS at /rom, and
#   boot.py/main.py run at start (_boot.py, frozen);
# - Ctrl-C on the UART raises KeyboardInterrupt in running code (usermod tsuart).
QEMU_ARCH = riscv32
QEMU_MACHINE = virt

CFLAGS += -DQEMU_SOC_VIRT
CFLAGS += -DMICROPY_HW_MCU_NAME='"ESP32-C3-class rv32imc"'
CFLAGS += -DMICROPY_EMIT_RV32_ZBA=0 -DMICROPY_EMIT_RV32_ZCMP=0
CFLAGS += -DTSC3_RUN_BOOT_SCRIPTS=1
CFLAGS += -include $(BOARD_DIR)/../usermod/tsuart/tsuart.h

LDSCRIPT = mcu/rv32/virt.ld

MICROPY_HW_ROMFS_PART0_START = 0x80610000
MICROPY_HW_ROMFS_PART0_SIZE = 0x00400000

SRC_BOARD_O += shared/runtime/gchelper_native.o shared/runtime/gchelper_rv32i.o

MPY_CROSS_FLAGS += -march=rv32imc

MICROPY_HEAP_SIZE = $(TSC3_HEAP_SIZE)
MICROPY_STACK_SIZE = 16384
MICROPY_VFS_LFS2 = 1
FROZEN_MANIFEST = $(BOARD_DIR)/manifest.py

# cryptolib over axTLS's AES alone (its TLS parts need malloc and time, absent here)
CFLAGS += -DMICROPY_PY_CRYPTOLIB=1 -DMICROPY_SSL_AXTLS=1
CFLAGS += -I$(TOP)/lib/axtls/ssl -I$(TOP)/lib/axtls/crypto -I$(TOP)/extmod/axtls-include
SRC_C += lib/axtls/crypto/aes.c
$(BUILD)/lib/axtls/%.o: CFLAGS += -Wno-all -Wno-unused-parameter -Wno-uninitialized \
	-Wno-sign-compare -Wno-old-style-definition -Wno-error
