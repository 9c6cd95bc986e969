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
	RAY_AUTH_MODE=disabled $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) runs ray_results reports .pytest_cache .ruff_cache
