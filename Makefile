PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install install-ray test test-slow demo lint format bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,ray,mlflow]'
	@touch $(STAMP)

install: $(STAMP)

install-ray: $(STAMP)  # the ray extra is part of the dev install; this target is kept for clarity
	$(BIN)/python -m pip install -q -e '.[ray]'

test: $(STAMP)  # one pytest worker per core, at most 4 (each holds a TensorFlow)
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist worksteal

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

demo: $(STAMP)
	$(BIN)/lossbench compare --epochs 15 --seeds 0

lint: $(STAMP)
	$(BIN)/ruff check lossbench tests scripts examples
	$(BIN)/ruff format --check lossbench tests scripts examples

format: $(STAMP)
	$(BIN)/ruff format lossbench tests scripts examples
	$(BIN)/ruff check --fix lossbench tests scripts examples

bench: $(STAMP)
	$(BIN)/lossbench bench

clean:
	rm -rf $(VENV) build *.egg-info
