# One-command setup on a fresh machine: `make demo` runs the main job, `make test` the test suite.
# Both create .venv on first use. On a GPU machine pick a CUDA wheel: `make setup TORCH_SPEC=torch`.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
# dev: pytest, ruff; peers: zuko and nflows, whose flows the tests and benchmarks compare with
EXTRAS ?= dev,peers
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo ui test lint format clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned, so that the `torch>=2.2` requirement does not pull a multi-GB CUDA build
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/relgrad scaling --preset quick --report

ui: $(STAMP)
	$(BIN)/relgrad ui

test: $(STAMP)
	$(BIN)/ruff check .
	# first the tests that judge real timings, alone on the cores; then the rest on two workers (pytest-xdist;
	# the tests that share a session's Ray or MLflow server stay on one worker: tests/conftest.py)
	RAY_AUTH_MODE=disabled $(BIN)/python -m pytest -q -m serial
	RAY_AUTH_MODE=disabled $(BIN)/python -m pytest -q -m "not serial" -n 2 --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) runs ray_results reports .pytest_cache .ruff_cache
