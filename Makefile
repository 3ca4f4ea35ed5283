# Two commands: `make serve` and `make test`. Each bootstraps .venv when missing
# and reinstalls only when pyproject.toml changed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: serve test lint unit bench install install-dev clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-local: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[local]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[local,dev]'
	touch $@ $(VENV)/.installed-local

install: $(VENV)/.installed-local
install-dev: $(VENV)/.installed-dev

serve: install
	HOST=$(HOST) PORT=$(PORT) $(PY) server.py

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

test: install-dev lint
	env -u LANGSMITH_API_KEY -u LANGSMITH_TRACING -u LANGCHAIN_TRACING_V2 -u LANGCHAIN_API_KEY \
		-u OPENAI_API_KEY -u OPENAI_BASE_URL \
		$(PY) -m pytest

unit: install-dev
	$(PY) -m pytest tests/unit -q

bench: install-dev
	$(PY) -m bench.bench_local
	$(PY) -m bench.bench_classify

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
