# vjepa2_ros: `make demo` and `make test` set everything up first (idempotent; seconds on a set-up tree).
SHELL := /bin/bash
.DEFAULT_GOAL := help
ENV := source scripts/env.sh &&
PYTEST_ARGS ?=
PYTEST ?= python -m pytest

.PHONY: help setup demo test test-fast bench lint clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup:  ## venv + pinned deps (+ ROS 2 Kilted wheels when no ROS is sourced) + colcon build
	@bash scripts/setup.sh

demo: setup  ## a closed-loop episode in the simulator with a shipped model (DEMO_TASK=reach|grasp|reach_object|pick_place)
	@$(ENV) bash scripts/demo.sh

# The pytest output is also scanned: a stray traceback, "... was never retrieved" or ResourceWarning fails the run
# (scripts/check_quiet_output.py), even when every test passed.
test: setup  ## the whole test suite (lint, packages, nodes over Fast DDS, models, sim, training), quiet output
	@set -o pipefail; $(ENV) log=$$(mktemp -t vjepa2_ros_test.XXXXXX) && { \
	  PYTHONUNBUFFERED=1 $(PYTEST) -q $(PYTEST_ARGS) 2>&1 | tee "$$log" && python scripts/check_quiet_output.py "$$log"; \
	  rc=$$?; rm -f "$$log"; exit $$rc; }

bench: setup  ## benchmarks: JSON in bench/results/, markdown tables on stdout
	@$(ENV) bash bench/run_all.sh

lint: setup  ## ruff
	@$(ENV) ruff check .

clean:  ## remove build outputs (keeps the venv)
	rm -rf ros2_ws/build ros2_ws/install ros2_ws/log .venv/.stamp-build
