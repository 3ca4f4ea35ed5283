# Two commands: `make serve` and `make test`. Each bootstraps .venv when missing and installs
# exactly the versions pinned, with hashes, in requirements/*.txt (exported from uv.lock by
# `make lock`); it reinstalls only when a lock or pyproject.toml changed.
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

.PHONY: serve test lint unit bench install install-dev llama lock postgres clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-llama-$(LLAMA_FLAVOR): scripts/build_llama.sh scripts/llama_flags.sh | $(PY)
	wheel=$$(scripts/build_llama.sh $(PY) $(LLAMA_FLAVOR)) && \
		$(PY) -m pip install -q --no-deps --force-reinstall "$$wheel"
	rm -f $(VENV)/.installed-llama-*
	touch $@

# Everything but llama-cpp-python and the project comes from a lock, every file checked against
# its hash, wheels only (nothing is built, so nothing comes back from pip's wheel cache). The
# project itself is built with the locked setuptools (no build isolation: nothing unpinned).
LOCK_LOCAL := requirements/local.txt
LOCK_DEV := requirements/dev.txt
PIP_LOCKED := $(PY) -m pip install -q --require-hashes --only-binary :all:
PIP_PROJECT := $(PY) -m pip install -q --no-deps --no-build-isolation -e .

$(VENV)/.installed-local: $(LOCK_LOCAL) pyproject.toml $(VENV)/.installed-llama-$(LLAMA_FLAVOR)
	$(PIP_LOCKED) -r $(LOCK_LOCAL)
	$(PIP_PROJECT)
	touch $@

# --prune: a venv made from an older lock loses what the new one dropped.
$(VENV)/.installed-dev: $(LOCK_DEV) pyproject.toml $(VENV)/.installed-llama-$(LLAMA_FLAVOR)
	$(PIP_LOCKED) -r $(LOCK_DEV)
	$(PIP_PROJECT)
	$(PY) scripts/check_lock.py $(LOCK_DEV) --llama --prune
	touch $@ $(VENV)/.installed-local

install: $(VENV)/.installed-local
llama: $(VENV)/.installed-llama-$(LLAMA_FLAVOR)
install-dev: $(VENV)/.installed-dev

# Refresh the lock: the newest versions pyproject.toml's ranges allow, resolved once for every
# Python and platform we support (uv.lock), then exported with hashes per install: base
# (upstream only), local (+ the embedded model) and dev (+ the tools). llama-cpp-python is left
# out of the exports: scripts/build_llama.sh builds it. LOCK_ARGS= keeps what still fits.
LOCK_ARGS ?= --upgrade
UV_EXPORT := $(VENV)/bin/uv export --frozen --quiet --format requirements-txt --no-emit-project \
	--no-emit-package llama-cpp-python --group build
lock: install-dev
	$(VENV)/bin/uv lock $(LOCK_ARGS)
	$(UV_EXPORT) -o requirements/base.txt
	$(UV_EXPORT) --extra local -o requirements/local.txt
	$(UV_EXPORT) --extra local --extra dev -o requirements/dev.txt

serve: install
	HOST=$(HOST) PORT=$(PORT) $(PY) server.py

# uv lock --check: uv.lock still satisfies pyproject.toml (run `make lock` when it does not).
lint: install-dev
	$(VENV)/bin/uv lock --check --offline --quiet
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

# The live peer tests start llama.cpp's llama-server: built once with the pinned flags and
# cached by them (scripts/build_llama_server.sh prints its path; seconds when cached).
test: install-dev lint postgres
	$(PY) scripts/check_lock.py $(LOCK_DEV) --llama
	server=$$(PYTHON=$(PY) scripts/build_llama_server.sh portable) && \
	env -u LANGSMITH_API_KEY -u LANGSMITH_TRACING -u LANGCHAIN_TRACING_V2 -u LANGCHAIN_API_KEY \
		-u OPENAI_API_KEY -u OPENAI_BASE_URL LLAMA_SERVER_BIN="$$server" \
		$(PY) -m pytest

# The calibration live tests start a PostgreSQL server of their own (tests/postgres.py) from
# Debian's postgresql package: installed here when missing and we are root (else they skip,
# and fail under CI).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; } || \
	echo "postgresql is not installed: the PostgreSQL calibration tests will skip (fail in CI)"

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
