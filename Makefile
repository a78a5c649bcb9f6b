# Build and test tooling for nerv.homelab. Every target runs the tools of the project virtual environment
# (.venv), which holds as much as the target needs, each layer installed once and again only when its
# requirements file changes: what the playbooks need (requirements.txt), the demo's emulator on top
# (requirements-demo.txt), the test toolchain on top of that (requirements-test.txt).
#
#   make venv         .venv with what the playbooks need
#   make test         ruff, changelog lint, ansible-lint, ansible-test sanity, molecule, then pytest
#   make demo         playbooks/site.yml for inventory/demo through its Proxmox phases, against a local fakepve

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
# The layers of `make test` run in the order given, even under `make -j`.
.NOTPARALLEL:

PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
RUNTIME_STAMP := $(abspath $(VENV))/.runtime.stamp
DEMO_STAMP := $(abspath $(VENV))/.demo.stamp
STAMP := $(abspath $(VENV))/.requirements.stamp
export PATH := $(BIN):$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

PYTEST_PATHS = $(wildcard tests/unit tests/integration)
MOLECULE_SCENARIOS = $(sort $(wildcard roles/*/molecule/*/molecule.yml))

.PHONY: help venv test-venv test lint ruff changelog-lint ansible-lint sanity molecule pytest unit integration demo clean

help:
	@echo 'make venv         create .venv with what the playbooks need (requirements.txt, when it changed)'
	@echo 'make test-venv    the same plus the test toolchain (requirements-test.txt)'
	@echo 'make test         ruff, changelog lint, ansible-lint, ansible-test sanity, molecule, then pytest'
	@echo '                  (stops at the first failing layer; make -k test runs them all)'
	@echo 'make lint         ruff check + ruff format --check, antsibull-changelog lint, ansible-lint'
	@echo 'make sanity       ansible-test sanity on a copy of the collection (tests/sanity/run.sh)'
	@echo 'make molecule     every scenario under roles/*/molecule/*'
	@echo 'make unit         pytest tests/unit'
	@echo 'make integration  pytest tests/integration'
	@echo 'make demo         playbooks/site.yml for inventory/demo (keys, template, VMs) against a local fakepve'
	@echo 'make bench        bench/inventory.py: community.proxmox against nerv.homelab.proxmox (minutes)'
	@echo 'make bench-upload bench/upload.py: peak memory of a 2 GiB upload'
	@echo 'make clean        remove .venv and test output'

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "nerv.homelab needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The layers a user meets (venv, demo) say what pip does as it goes; the test toolchain, for CI, stays quiet.
$(RUNTIME_STAMP): requirements.txt | $(BIN)/python
	@echo 'venv: installing what the playbooks need (requirements.txt) into $(VENV)'
	$(BIN)/python -m pip install --progress-bar off -r requirements.txt
	@touch $@

$(DEMO_STAMP): requirements.txt requirements-demo.txt | $(BIN)/python
	@echo 'venv: installing what the demo runs (requirements-demo.txt: the playbooks'"'"' needs and fakepve) into $(VENV)'
	$(BIN)/python -m pip install --progress-bar off -r requirements-demo.txt
	@touch $@ $(RUNTIME_STAMP)

$(STAMP): requirements.txt requirements-demo.txt requirements-test.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-test.txt
	@touch $@ $(DEMO_STAMP) $(RUNTIME_STAMP)

venv: $(RUNTIME_STAMP)

test-venv: $(STAMP)

test: lint sanity molecule pytest

lint: ruff changelog-lint ansible-lint

ruff: test-venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

changelog-lint: test-venv
	$(BIN)/antsibull-changelog lint

ansible-lint: test-venv
	$(BIN)/ansible-lint --profile production

sanity: test-venv
	VENV=$(abspath $(VENV)) tests/sanity/run.sh

molecule: test-venv
	@test -n "$(MOLECULE_SCENARIOS)" || { echo 'molecule: no scenario under roles/*/molecule/*'; exit 1; }
	@set -e; for f in $(MOLECULE_SCENARIOS); do \
	  scenario=$$(basename $$(dirname $$f)); role_dir=$$(dirname $$(dirname $$(dirname $$f))); \
	  echo "== molecule test -s $$scenario ($$role_dir)"; \
	  (cd $$role_dir && $(BIN)/molecule test -s $$scenario); \
	done

# One pytest run over both layers, so its summary line is the last thing `make test` prints; one worker per CPU
# (pytest-xdist): most of an integration test waits on its emulators, SSH or a sleep, and two run in the time of one.
pytest: test-venv
	$(BIN)/pytest -n auto $(PYTEST_PATHS)

unit: test-venv
	$(BIN)/pytest tests/unit

integration: test-venv
	$(BIN)/pytest tests/integration

demo: $(DEMO_STAMP)
	$(BIN)/python hacking/demo.py

clean:
	rm -rf $(VENV) tests/output .pytest_cache .ruff_cache
	find plugins tests -name __pycache__ -type d -prune -exec rm -rf {} +

# Not part of `make test`: community.proxmox against nerv.homelab.proxmox on a fakepve, in bench/.venv
# (made on first use). A few minutes; BENCH_ARGS=--quick for a smoke run, --json for JSON. See docs/benchmarks.md.
.PHONY: bench bench-upload
bench:
	$(PYTHON) bench/inventory.py $(BENCH_ARGS)

# Peak memory of a 2 GiB ISO upload, nerv's streamed upload against a naive requests upload (about a minute).
bench-upload: test-venv
	$(BIN)/python bench/upload.py $(BENCH_ARGS)
