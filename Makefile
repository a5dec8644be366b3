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
# renders in headless chromium, ~270 MB installed, ~25 s to install).
SYSTEM_PACKAGES := mosquitto chromium

# `make nodes` (ports/micropython.mk) builds the 32-bit virtual board and the RV32 QEMU board.
.PHONY: setup system-deps test test-fast demo deploy flash monitor validate bench \
        bench-gateway models lint clean

setup: $(STAMP) $(SYSSTAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

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

test: setup nodes
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: setup nodes
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

demo: setup
	$(BIN)/tinysense demo --board $(BOARD) $(if $(PORT),--target $(PORT),)

deploy: setup
	$(BIN)/tinysense deploy --target $(if $(PORT),$(PORT),$(TARGET)) --board $(BOARD)

flash: setup
	$(BIN)/tinysense flash --board $(BOARD) $(if $(PORT),--port $(PORT),) --firmware $(FIRMWARE)

monitor: setup
	$(BIN)/tinysense monitor --target $(if $(PORT),$(PORT),$(TARGET)) --board $(BOARD)

validate: setup
	$(BIN)/tinysense validate-all --target $(TARGET) --board $(BOARD) --html out/validate

bench: setup
	$(BIN)/tinysense bench-all --target virtual --board ESP32_GENERIC_S3 --md docs/benchmarks.md

bench-gateway: setup
	$(BIN)/tinysense bench-gateway

models: setup
	$(BIN)/python -m pip install --quiet -e '.[test,train]'
	$(BIN)/python models/train_all.py

lint: setup
	$(BIN)/python -m pip install --quiet ruff
	$(BIN)/ruff check host tests firmware models

clean:
	rm -rf $(VENV) build .pytest_cache .tinysense

include ports/micropython.mk
