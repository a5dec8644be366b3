# tinysense: every set-up step lives here. `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SYSSTAMP := $(VENV)/.system-deps
BOARD ?= ESP32_GENERIC
TARGET ?= auto
PORT ?=
FIRMWARE ?=
PYTEST_ARGS ?=
# Debian packages the tests need (the gateway tests run a real broker; the HTML report test
# renders in headless chromium, ~270 MB installed, ~25 s to install; the fleet page test
# drives chromium over its DevTools pipe, so no chromedriver).
SYSTEM_PACKAGES := mosquitto chromium

# `make nodes` (ports/micropython.mk) builds the 32-bit virtual board and the RV32 QEMU board.
.PHONY: setup constraints constraints-train train-setup system-deps test test-fast soak-ota demo deploy flash monitor validate bench \
        bench-gateway bench-ota models lint clean

setup: $(STAMP) $(SYSSTAMP)

# pyproject.toml gives the ranges the code needs; constraints.txt the exact versions `make
# setup` (and so CI) installs: `make constraints` rewrites it from this venv after an upgrade.
CONSTRAINTS := constraints.txt
PIP_INSTALL := $(BIN)/python -m pip install --quiet -c $(CONSTRAINTS)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP_INSTALL) --upgrade pip
	$(PIP_INSTALL) -e '.[test]'
	@touch $@

# The `train` extra (TensorFlow, ~1.6 GB, ~1 min to install) in a venv of its own: the main
# venv stays small, and TensorFlow's pins cannot move what the rest runs on. `tinysense
# quantize` runs there (`.venv-train/bin/tinysense quantize ...`), and make test's quantize
# test drives it. constraints-train.txt holds its exact versions (`make constraints-train`).
TRAIN_VENV := .venv-train
TRAIN_BIN := $(TRAIN_VENV)/bin
TRAIN_STAMP := $(TRAIN_VENV)/.installed
TRAIN_CONSTRAINTS := constraints-train.txt
$(TRAIN_STAMP): pyproject.toml $(TRAIN_CONSTRAINTS)
	@test -x $(TRAIN_BIN)/python || $(PY) -m venv $(TRAIN_VENV)
	$(TRAIN_BIN)/python -m pip install --quiet -c $(TRAIN_CONSTRAINTS) --upgrade pip
	$(TRAIN_BIN)/python -m pip install --quiet -c $(TRAIN_CONSTRAINTS) -e '.[train]'
	@touch $@
train-setup: $(TRAIN_STAMP)

constraints-train: $(TRAIN_STAMP)
	@{ echo "# The exact versions \`make train-setup\` installs into .venv-train (pip -c): \`make"; \
	  echo "# constraints-train\` wrote them from that venv (pip freeze --all, without tinysense)."; \
	  $(TRAIN_BIN)/python -m pip freeze --all --exclude-editable | grep -iv '^tinysense=='; } \
	  > $(TRAIN_CONSTRAINTS).tmp && mv $(TRAIN_CONSTRAINTS).tmp $(TRAIN_CONSTRAINTS)

constraints: $(STAMP)
	@{ echo "# The exact versions \`make setup\` installs (pip -c): \`make constraints\` wrote them"; \
	  echo "# from the venv (pip freeze --all, without tinysense itself)."; \
	  $(BIN)/python -m pip freeze --all --exclude-editable | grep -iv '^tinysense=='; } \
	  > $(CONSTRAINTS).tmp && mv $(CONSTRAINTS).tmp $(CONSTRAINTS)
	@echo "wrote $(CONSTRAINTS) ($$(grep -vc '^#' $(CONSTRAINTS)) packages)"

# Installs missing Debian packages when we can (root + apt); otherwise says what to install.
$(SYSSTAMP): Makefile
	@missing=""; for p in $(SYSTEM_PACKAGES); do command -v $$p >/dev/null || \
	  [ -x /usr/sbin/$$p ] || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "please install:$$missing (e.g. sudo apt-get install$$missing)"; exit 1; fi; \
	fi
	@mkdir -p $(VENV) && touch $@

# Second tier of `make test`: the HIL tests that prove the most on the RV32 QEMU board
# (ESP32-C3-class: rv32imc native code, 32-bit ints, heap above 0x40000000; docs/hil.md):
# conformance models, op zoo, validate, uplink over serial, node API, resets, ROMFS, the fit
# verdict against what loads there (with the board's ROMFS partition all 9 conformance models
# fit and run), the native kernels byte-exact, an OTA update received, verified and
# self-tested on the node, and the demo with its uplink over the console.
# It runs beside the main suite (one core each; its own $$TINYSENSE_HOME and pytest temp
# directory), its report printed after the main suite's: about 7-8 minutes on 2 cores; the
# longest are the op zoo, vww (20 vectors of 27 KB in chunks) and the C3 fit verdict.
# QEMU's silence limits are 6x a board's (TINYSENSE_TIMEOUT_SCALE), so a busy host does not
# fail it. Nothing is trimmed. RV32_SERIAL=1 runs the two tiers one after the other.
RV32_HIL ?= tests/hil/test_conformance.py tests/hil/test_op_zoo_node.py \
            tests/hil/test_validate_node.py tests/hil/test_uplink_hil.py tests/hil/test_node.py \
            tests/hil/test_reset.py tests/hil/test_romfs_hil.py tests/hil/test_fit_verdict.py \
            tests/hil/test_memory.py tests/hil/test_native_kernels.py tests/hil/test_ota_node.py \
            tests/hil/test_demo.py::test_demo_on_the_rv32_board_over_serial
RV32_ELF := build/micropython/qemu-rv32/firmware.elf
RV32_LOG := build/test-rv32.log
RV32_CMD = $(BIN)/python -m pytest $(RV32_HIL) --tinysense-target qemu-rv32 \
           --tinysense-board ESP32_GENERIC_C3 --basetemp=build/pytest-rv32 $(PYTEST_ARGS)

test: setup nodes train-setup
	@if [ ! -f $(RV32_ELF) ]; then \
	  echo "RV32 QEMU tier skipped: $(RV32_ELF) is not built (make nodes: see docs/virtual-board.md)"; \
	  exec $(BIN)/python -m pytest $(PYTEST_ARGS); fi; \
	if [ -n "$(RV32_SERIAL)" ]; then \
	  $(BIN)/python -m pytest $(PYTEST_ARGS) && \
	  echo "RV32 QEMU tier: $(RV32_HIL) --target qemu-rv32 --board ESP32_GENERIC_C3" && \
	  exec $(RV32_CMD); exit 1; fi; \
	echo "RV32 QEMU tier: running beside the main suite, its report follows it ($(RV32_LOG))"; \
	$(RV32_CMD) > $(RV32_LOG) 2>&1 & rv32=$$!; \
	trap 'kill $$rv32 2>/dev/null' INT TERM; \
	$(BIN)/python -m pytest $(PYTEST_ARGS); main=$$?; \
	wait $$rv32; rv=$$?; \
	echo "RV32 QEMU tier: $(RV32_HIL) --target qemu-rv32 --board ESP32_GENERIC_C3"; \
	cat $(RV32_LOG); \
	echo "main suite: exit $$main; RV32 QEMU tier: exit $$rv"; \
	[ $$main = 0 ] && [ $$rv = 0 ]

# Over-the-air updates under power cuts: the node SIGKILLed 500 times at random instants of
# transfers, verifications and switches (make test runs 100); OTA_CUTS=N for another count.
OTA_CUTS ?= 500
soak-ota: setup nodes
	TINYSENSE_OTA_CUTS=$(OTA_CUTS) $(BIN)/python -m pytest tests/node/test_ota.py -k power_cuts $(PYTEST_ARGS)

test-fast: setup nodes
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

# make demo PORT=/dev/ttyUSB0 (a board), make demo TARGET=qemu-rv32 (the RV32 QEMU board, uplink
# over its console; BOARD defaults to ESP32_GENERIC_C3 there); TARGET's `auto` default is not used
DEMO_TARGET = $(or $(PORT),$(if $(filter command line environment,$(origin TARGET)),$(TARGET)))
DEMO_BOARD = $(if $(and $(filter qemu-rv32,$(DEMO_TARGET)),$(filter file,$(origin BOARD))),ESP32_GENERIC_C3,$(BOARD))
demo: setup nodes
	$(BIN)/tinysense demo --board $(DEMO_BOARD) $(if $(DEMO_TARGET),--target $(DEMO_TARGET),)

deploy: setup
	$(BIN)/tinysense deploy --target $(if $(PORT),$(PORT),$(TARGET)) --board $(BOARD)

flash: setup
	$(BIN)/tinysense flash --board $(BOARD) $(if $(PORT),--port $(PORT),) --firmware $(FIRMWARE)

monitor: setup
	$(BIN)/tinysense monitor --target $(if $(PORT),$(PORT),$(TARGET)) --board $(BOARD)

validate: setup
	$(BIN)/tinysense validate-all --target $(TARGET) --board $(BOARD) --html out/validate

# Two tables: host time on the virtual board (beside tflite-micro on the same host), and
# instructions per inference on the RV32 QEMU board (beside the published ESP32-C3 figures).
# docs/benchmarks.md: one section per build of the virtual board (32-bit, then the 64-bit
# PyPI port); each run replaces its own section. Both kernel sets per model.
bench: setup nodes natmods
	$(BIN)/tinysense bench-all --target virtual --board ESP32_GENERIC_S3 --kernels both --md docs/benchmarks.md
	TINYSENSE_MICROPYTHON=$(BIN)/micropython $(BIN)/tinysense bench-all --target virtual --board ESP32_GENERIC_S3 --kernels both --md docs/benchmarks.md
	$(BIN)/tinysense bench-all --target qemu-rv32 --board ESP32_GENERIC_C3 --kernels both --md docs/benchmarks-rv32.md

# an over-the-air update on a running virtual board: steps' times and the node's free heap
bench-ota: setup nodes
	$(BIN)/python -m tinysense.bench.ota --board $(BOARD)

bench-gateway: setup
	$(BIN)/tinysense bench-gateway

models: setup
	$(PIP_INSTALL) -e '.[test,train]'
	$(BIN)/python models/train_all.py

lint: setup
	$(PIP_INSTALL) ruff
	$(BIN)/ruff check host tests firmware models

clean:
	rm -rf $(VENV) build .pytest_cache .tinysense

include ports/micropython.mk
include natmod/natmod.mk
