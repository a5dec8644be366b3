# tinysense: the native-code kernels (natmod/tsnn/, a MicroPython dynamic native module),
# included by the Makefile. `make natmods` builds build/natmod/<arch>/tsnn.mpy for every arch
# whose compiler is on PATH and prints each one's size; an arch without its compiler is
# skipped with one line, and tests/node/test_natmod.py skips that arch with the same reason.
#
#   x64      gcc (x86_64-linux-gnu-gcc)            the 64-bit unix port
#   x86      gcc -m32 (gcc-multilib)               the 32-bit unix port (the virtual board)
#   rv32imc  riscv64-unknown-elf-gcc               ESP32-C3/C6, the RV32 QEMU board
#   xtensawin  xtensa-esp32-elf-gcc (ESP-IDF's)    ESP32, ESP32-S3: `make natmods
#            NATMOD_ARCHS=xtensawin` with ESP-IDF's export.sh sourced (untested here)
#
# The parameter word indices come from firmware/tsnode/engine/k*.py (natmod/tsnn/gen_params.py
# writes build/natmod/tsnn_params.h); needs `make nodes` (the MicroPython source) and the
# venv (pyelftools for mpy_ld.py).
NATMOD_ARCHS ?= x64 x86 rv32imc
NATMOD_DIR := build/natmod
NATMOD_SRC := natmod/tsnn/tsnn.c natmod/tsnn/Makefile
NATMOD_KERNELS := $(wildcard firmware/tsnode/engine/k*.py)

.PHONY: natmods natmods-clean

natmods: setup nodes
	@if [ ! -f $(MPSRC)/py/dynruntime.mk ]; then \
	  echo "native kernels not built: no MicroPython source ($(MPSRC), make nodes)"; \
	  mkdir -p $(NATMOD_DIR); echo "no MicroPython source (make nodes)" > $(NATMOD_DIR)/UNAVAILABLE; exit 0; fi; \
	rm -f $(NATMOD_DIR)/UNAVAILABLE; mkdir -p $(NATMOD_DIR); \
	$(BIN)/python natmod/tsnn/gen_params.py $(NATMOD_DIR)/tsnn_params.h || exit 1; \
	for a in $(NATMOD_ARCHS); do \
	  cc=$$(case $$a in x64) echo x86_64-linux-gnu-gcc;; x86) echo gcc;; rv32imc) echo riscv64-unknown-elf-gcc;; *) echo xtensa-esp32-elf-gcc;; esac); \
	  if ! command -v $$cc >/dev/null; then \
	    echo "tsnn.mpy ($$a) not built: $$cc not found"; \
	    mkdir -p $(NATMOD_DIR)/$$a; echo "$$cc not found" > $(NATMOD_DIR)/$$a/UNAVAILABLE; continue; fi; \
	  rm -f $(NATMOD_DIR)/$$a/UNAVAILABLE; \
	  $(MAKE) --no-print-directory -s -C natmod/tsnn MPY_DIR=$(abspath $(MPSRC)) ARCH=$$a \
	    BUILD=$(abspath $(NATMOD_DIR))/$$a/obj OUT=$(abspath $(NATMOD_DIR))/$$a/tsnn.mpy \
	    GEN_DIR=$(abspath $(NATMOD_DIR)) PYTHON=$(abspath $(BIN)/python) \
	    $(abspath $(NATMOD_DIR))/$$a/tsnn.mpy >$(NATMOD_DIR)/$$a.log 2>&1 || { \
	    cat $(NATMOD_DIR)/$$a.log; echo "tsnn.mpy ($$a): build failed"; exit 1; }; \
	  echo "tsnn.mpy ($$a): $$(wc -c < $(NATMOD_DIR)/$$a/tsnn.mpy) bytes ($(NATMOD_DIR)/$$a/tsnn.mpy)"; \
	done

natmods-clean:
	rm -rf $(NATMOD_DIR)

test test-fast: natmods
