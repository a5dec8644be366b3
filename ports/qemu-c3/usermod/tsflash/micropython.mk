# tinysense: the flash block device of the RV32 QEMU board (a host file reached through
# semihosting), plus the MicroPython sources it needs that the qemu port does not build.
TSFLASH_DIR := $(USERMOD_DIR)
SRC_USERMOD_C += $(TSFLASH_DIR)/tsflash.c
SRC_USERMOD_LIB_C += shared/runtime/semihosting_rv32.c
