# tinysense: the 32-bit nodes, built from MicroPython's source (included by the Makefile).
#
#   build/micropython/src/                 the source, unpacked (never edited: patched copy)
#   build/micropython/unix-x86/micropython the 32-bit x86 unix port (the virtual board)
#   build/micropython/qemu-rv32/firmware.elf  ports/qemu, our ESP32-C3-class board
#   build/micropython/mpy-cross            mpy-cross of the same commit
#
# Source, first found: MICROPYTHON_SRC=DIR (your checkout of the same commit, or a 1.29
# release), the tarball in ../shared/micropython/, else a download of MP_COMMIT from GitHub.
# Everything is rebuilt only when the source, our patch or our board files change.
MP_COMMIT := 1c3c201149f37fe8d81246191b3127bb198d6306
MP_TARBALL ?= $(wildcard ../shared/micropython/micropython-$(shell echo $(MP_COMMIT) | cut -c1-10).tar.gz)
MICROPYTHON_SRC ?=
MPB := build/micropython
MPSRC := $(MPB)/src
MP_PATCHES := $(sort $(wildcard ports/patches/*.patch))
QEMU_C3_FILES := $(wildcard ports/qemu-c3/board/* ports/qemu-c3/usermod/*/*)
# The C3's GC heap (board_configs/ESP32_GENERIC_C3.toml heap_budget) is the RV32 board's.
TSC3_HEAP_SIZE ?= $(shell sed -n 's/^heap_budget *= *\([0-9]*\).*/\1/p' \
                    board_configs/ESP32_GENERIC_C3.toml)
MP_J ?= -j2
# Debian packages the 32-bit nodes need (checked and installed like SYSTEM_PACKAGES).
NODE_PACKAGES := gcc-multilib gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf qemu-system-misc
NODE_CHECKS := /usr/include/x86_64-linux-gnu/gnu/stubs-32.h:gcc-multilib \
               /usr/bin/riscv64-unknown-elf-gcc:gcc-riscv64-unknown-elf \
               /usr/lib/picolibc/riscv64-unknown-elf/picolibc.specs:picolibc-riscv64-unknown-elf \
               /usr/bin/qemu-system-riscv32:qemu-system-misc

MP_SRC_KIND := $(if $(MICROPYTHON_SRC),dir,$(if $(MP_TARBALL),tarball,download))
MP_SRC_DEP := $(if $(MICROPYTHON_SRC),,$(MP_TARBALL))

.PHONY: nodes node-packages nodes-clean mp-download

# `make nodes` builds both 32-bit nodes; without any source it says where to get one and
# succeeds, and the tests that need these nodes skip with that reason.
nodes: node-packages
	@if [ "$(MP_SRC_KIND)" = download ] && [ ! -f $(MPSRC)/.unpacked ]; then \
	  mkdir -p $(MPB); echo "no MicroPython source here: downloading $(MP_COMMIT) from GitHub"; \
	  $(MAKE) --no-print-directory -s mp-download >$(MPB)/download.log 2>&1 || { \
	    echo "tinysense: no MicroPython source (../shared/micropython/ tarball, MICROPYTHON_SRC=DIR, or a download of $(MP_COMMIT)); the 32-bit nodes are not built: see docs/virtual-board.md"; \
	    mkdir -p $(MPB); echo "no MicroPython source: set MICROPYTHON_SRC=DIR (see docs/virtual-board.md)" > $(MPB)/UNAVAILABLE; \
	    exit 0; }; \
	fi; \
	rm -f $(MPB)/UNAVAILABLE; \
	$(MAKE) --no-print-directory $(MPB)/unix-x86/micropython $(MPB)/qemu-rv32/firmware.elf $(MPB)/mpy-cross

node-packages:
	@missing=""; for c in $(NODE_CHECKS); do [ -e $${c%%:*} ] || missing="$$missing $${c##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "please install:$$missing (e.g. sudo apt-get install$$missing)"; exit 1; fi; \
	fi

# GitHub's archive of the pinned commit, and axTLS at the submodule commit cryptolib uses.
mp-download:
	@command -v curl >/dev/null || { echo "curl not found"; exit 1; }
	rm -rf $(MPB)/dl && mkdir -p $(MPB)/dl
	curl -fsSL --max-time 120 -o $(MPB)/dl/mp.tar.gz https://github.com/micropython/micropython/archive/$(MP_COMMIT).tar.gz
	curl -fsSL --max-time 60 -o $(MPB)/dl/axtls.tar.gz https://github.com/micropython/axtls/archive/531cab9c278c947d268bd4c94ecab9153a961b43.tar.gz
	rm -rf $(MPSRC) && mkdir -p $(MPSRC)
	tar xzf $(MPB)/dl/mp.tar.gz -C $(MPSRC) --strip-components=1
	tar xzf $(MPB)/dl/axtls.tar.gz -C $(MPSRC)/lib/axtls --strip-components=1
	cd $(MPSRC) && for p in $(abspath $(MP_PATCHES)); do patch -s -p1 < $$p; done
	touch $(MPSRC)/.unpacked

# Unpack (or copy) the source and apply our patches: a fresh copy whenever either changes.
$(MPSRC)/.unpacked: $(MP_SRC_DEP) $(MP_PATCHES)
	rm -rf $(MPSRC) && mkdir -p $(MPSRC)
ifeq ($(MP_SRC_KIND),dir)
	cd "$(MICROPYTHON_SRC)" && tar cf - --exclude=.git --exclude='build*' . | tar xf - -C $(abspath $(MPSRC))
else ifeq ($(MP_SRC_KIND),tarball)
	tar xzf $(MP_TARBALL) -C $(MPSRC) --strip-components=1
endif
	cd $(MPSRC) && for p in $(abspath $(MP_PATCHES)); do patch -s -p1 < $$p; done
	touch $@

$(MPB)/mpy-cross: $(MPSRC)/.unpacked
	$(MAKE) -s -C $(MPSRC)/mpy-cross $(MP_J) >$(MPB)/mpy-cross.log 2>&1 || \
	  { tail -20 $(MPB)/mpy-cross.log; exit 1; }
	cp $(MPSRC)/mpy-cross/build/mpy-cross $@

# The 32-bit x86 unix port: viper with 32-bit ints, ESP32 object sizes, cryptolib (axTLS),
# vfs with ROMFS. Non-PIE, so with glibc's mmap threshold raised (the virtual board sets
# GLIBC_TUNABLES) its heap sits near 0x09000000, below 0x40000000 as on ESP32/S3/C3.
$(MPB)/unix-x86/micropython: $(MPSRC)/.unpacked $(MPB)/mpy-cross
	mkdir -p $(dir $@)
	$(MAKE) -s -C $(MPSRC)/ports/unix $(MP_J) VARIANT=standard BUILD=$(abspath $(MPB)/obj-unix-x86) \
	  MPY_CROSS=$(abspath $(MPB)/mpy-cross) \
	  CFLAGS_EXTRA="-m32 -fno-pie" LDFLAGS_EXTRA="-m32 -no-pie" MICROPY_PY_FFI=0 \
	  MICROPY_PY_BTREE=0 MICROPY_SSL_AXTLS=1 MICROPY_SSL_MBEDTLS=0 FROZEN_MANIFEST= \
	  >$(MPB)/unix-x86.log 2>&1 || { tail -30 $(MPB)/unix-x86.log; exit 1; }
	cp $(MPB)/obj-unix-x86/micropython $@

# ports/qemu with our ESP32-C3-class board (ports/qemu-c3/).
$(MPB)/qemu-rv32/firmware.elf: $(MPSRC)/.unpacked $(MPB)/mpy-cross $(QEMU_C3_FILES) \
                               board_configs/ESP32_GENERIC_C3.toml
	mkdir -p $(dir $@)
	rm -rf $(MPB)/obj-qemu-rv32
	$(MAKE) -s -C $(MPSRC)/ports/qemu $(MP_J) BOARD=TINYSENSE_C3 \
	  BOARD_DIR=$(abspath ports/qemu-c3/board) BUILD=$(abspath $(MPB)/obj-qemu-rv32) \
	  USER_C_MODULES=$(abspath ports/qemu-c3/usermod) MPY_LIB_DIR=$(abspath ports/qemu-c3/board) MPY_CROSS=$(abspath $(MPB)/mpy-cross) \
	  TSC3_HEAP_SIZE=$(TSC3_HEAP_SIZE) \
	  LIBS="$$(riscv64-unknown-elf-gcc -march=rv32imac -mabi=ilp32 -print-libgcc-file-name)" \
	  >$(MPB)/qemu-rv32.log 2>&1 || { tail -30 $(MPB)/qemu-rv32.log; exit 1; }
	cp $(MPB)/obj-qemu-rv32/firmware.elf $@

nodes-clean:
	rm -rf $(MPB)
