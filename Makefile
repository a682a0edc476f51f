# Mist: set-up, tests and running it from a checkout. `make help` lists the targets.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Reinstalled when pyproject.toml changes (new dependency, new entry point).
VENV_STAMP := $(VENV)/.installed-pyproject

DATA ?= $(CURDIR)/.mist-data
SOCKET := $(DATA)/mist.sock
PYTEST_TIMEOUT ?= 900
PYTEST_ARGS ?=
# Two workers (the tests wait on Docker and git far more than on the CPU); tests that share an engine-wide
# object are put on one worker with @pytest.mark.xdist_group.
PYTEST_WORKERS ?= 2

.PHONY: help venv docker system-packages run test lint fmt typecheck screenshots docs bench clean

help:
	@echo "make venv             .venv with mist and its dev tools (pip install -e '.[dev]')"
	@echo "make system-packages  Debian packages the tests use (installed when missing; root)"
	@echo "make docker           make sure a Docker Engine answers at /var/run/docker.sock"
	@echo "make run              start the daemon on $(SOCKET) and open the TUI"
	@echo "make test             lint, type-check and the whole test suite (what CI runs)"
	@echo "make lint / fmt       ruff check / ruff format"
	@echo "make screenshots      regenerate screenshots/*.svg"
	@echo "make docs             regenerate the route tables and models of docs/api.md"
	@echo "make bench            run every bench/bench_*.py"
	@echo "make clean            remove .venv and .mist-data"

venv: $(VENV_STAMP)
	@true

$(VENV_STAMP): pyproject.toml
	@if [ ! -x $(BIN)/python ]; then \
	    $(PYTHON) -m venv $(VENV) || { \
	        echo "could not create $(VENV) with $(PYTHON): on Debian install python3-venv (make system-packages)" >&2; \
	        exit 1; }; \
	fi
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

system-packages:
	@scripts/ensure-system-packages.sh

docker:
	@scripts/ensure-docker.sh

# The daemon runs in the background for as long as the TUI is open, and is stopped however the TUI exits.
run: venv docker
	@mkdir -p $(DATA)
	@# The API socket is 0660 with group `mist`: its members use Mist without being root.
	@if [ "$$(id -u)" = 0 ] && ! getent group mist >/dev/null; then groupadd --system mist; fi
	@if [ -S $(SOCKET) ]; then \
	    if $(BIN)/python -c 'import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])' $(SOCKET) 2>/dev/null; then \
	        echo "a daemon already serves $(SOCKET): stop it, or open the TUI with MIST_HOST=unix://$(SOCKET) $(BIN)/mist" >&2; \
	        exit 1; \
	    fi; \
	    rm -f $(SOCKET); \
	fi
	@MIST_DATA_DIR=$(DATA) MIST_SOCKET=$(SOCKET) $(BIN)/mistd --data $(DATA) --socket $(SOCKET) >>$(DATA)/mistd.log 2>&1 & \
	pid=$$!; \
	stop() { kill $$pid 2>/dev/null || true; wait $$pid 2>/dev/null || true; }; \
	trap stop EXIT; trap 'exit 130' INT TERM HUP; \
	for _ in $$(seq 1 150); do \
	    [ -S $(SOCKET) ] && break; \
	    if ! kill -0 $$pid 2>/dev/null; then \
	        echo "mistd exited before opening $(SOCKET); last lines of $(DATA)/mistd.log:" >&2; \
	        tail -n 20 $(DATA)/mistd.log >&2; exit 1; \
	    fi; \
	    sleep 0.2; \
	done; \
	if [ ! -S $(SOCKET) ]; then echo "mistd did not open $(SOCKET) within 30 s; see $(DATA)/mistd.log" >&2; exit 1; fi; \
	MIST_HOST=unix://$(SOCKET) $(BIN)/mist

test: system-packages venv docker
	$(BIN)/ruff check
	$(BIN)/ruff format --check
	$(BIN)/mypy mist_core
	$(BIN)/pytest -q -p no:cacheprovider --durations=20 --timeout=$(PYTEST_TIMEOUT) -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check
	$(BIN)/ruff format --check

fmt: venv
	$(BIN)/ruff check --fix
	$(BIN)/ruff format

typecheck: venv
	$(BIN)/mypy mist_core

screenshots: venv
	$(BIN)/python scripts/screenshots.py

docs: venv
	$(BIN)/python scripts/api_docs.py

bench: venv docker
	@shopt -s nullglob; benches=(bench/bench_*.py); \
	if [ $${#benches[@]} -eq 0 ]; then echo "no benchmarks in bench/"; exit 0; fi; \
	for b in "$${benches[@]}"; do echo "== $$b"; $(BIN)/python "$$b"; done

clean:
	rm -rf .venv .mist-data
