VENV ?= .venv
PY := $(VENV)/bin/python
SKELCTL := $(VENV)/bin/skelctl
DEMO_DIR ?= demo-out

.PHONY: install test test-fast bench bench-real demo lint clean

install:
	python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip >/dev/null
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e '.[dev,viz]'

test:
	$(PY) -m pytest -q tests

test-fast:
	$(PY) -m pytest -q -m "not slow" tests

bench:
	$(PY) benchmarks/run_all.py

demo:
	$(SKELCTL) demo $(DEMO_DIR)

lint:
	$(VENV)/bin/ruff check skelctl tests benchmarks

clean:
	rm -rf $(DEMO_DIR) .pytest_cache build *.egg-info
