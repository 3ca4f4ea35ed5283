# Two commands: `make serve` and `make test`. Each bootstraps .venv when missing
# and reinstalls only when pyproject.toml changed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
# llama-cpp-python is built by scripts/build_llama.sh with pinned flags into a wheelhouse keyed
# by those flags; pip never builds it from the sdist itself. The flavor is the fastest one this
# CPU runs safely (scripts/llama_flavor.sh: avx512 where every extension it uses is there, else
# portable AVX2; never -march=native, whose AMX kernels segfault). LLAMA_FLAVOR=portable forces
# the build the Docker image ships.
LLAMA_FLAVOR ?= $(shell scripts/llama_flavor.sh)
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: serve test lint unit bench install install-dev llama clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-llama-$(LLAMA_FLAVOR): scripts/build_llama.sh scripts/llama_flags.sh | $(PY)
	wheel=$$(scripts/build_llama.sh $(PY) $(LLAMA_FLAVOR)) && \
		$(PY) -m pip install -q --no-deps --force-reinstall "$$wheel"
	rm -f $(VENV)/.installed-llama-*
	touch $@

# --only-binary: should the wheel above be missing, fail rather than build natively.
$(VENV)/.installed-local: pyproject.toml $(VENV)/.installed-llama-$(LLAMA_FLAVOR)
	$(PY) -m pip install -q --only-binary llama-cpp-python -e '.[local]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed-llama-$(LLAMA_FLAVOR)
	$(PY) -m pip install -q --only-binary llama-cpp-python -e '.[local,dev]'
	touch $@ $(VENV)/.installed-local

install: $(VENV)/.installed-local
llama: $(VENV)/.installed-llama-$(LLAMA_FLAVOR)
install-dev: $(VENV)/.installed-dev

serve: install
	HOST=$(HOST) PORT=$(PORT) $(PY) server.py

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

# The live peer tests start llama.cpp's llama-server: built once with the pinned flags and
# cached by them (scripts/build_llama_server.sh prints its path; seconds when cached).
test: install-dev lint
	server=$$(PYTHON=$(PY) scripts/build_llama_server.sh portable) && \
	env -u LANGSMITH_API_KEY -u LANGSMITH_TRACING -u LANGCHAIN_TRACING_V2 -u LANGCHAIN_API_KEY \
		-u OPENAI_API_KEY -u OPENAI_BASE_URL LLAMA_SERVER_BIN="$$server" \
		$(PY) -m pytest

unit: install-dev
	$(PY) -m pytest tests/unit -q

bench: install-dev
	$(PY) -m bench.bench_local
	$(PY) -m bench.bench_batching
	$(PY) -m bench.bench_classify
	$(PY) -m bench.bench_load
	$(PY) -m bench.bench_service

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
