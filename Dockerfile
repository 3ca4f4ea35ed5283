# syntax=docker/dockerfile:1.7
#
# langserve-logprobs: the LangServe service, with the embedded Gemma 3 270M model baked in.
#
#   docker build -t langserve-logprobs .
#   docker run -p 8000:8000 langserve-logprobs            # embedded model, open /ui
#
# Upstream-only image (no llama.cpp, no model; set OPENAI_BASE_URL and/or OPENAI_API_KEY):
#
#   docker build --build-arg WITH_LOCAL_MODEL=0 -t langserve-logprobs:upstream .
#   docker run -p 8000:8000 -e OPENAI_BASE_URL=http://vllm:8000/v1 langserve-logprobs:upstream
#
# The install steps live in scripts/install.sh (tested outside Docker by
# tests/live/test_install_script.py): every dependency from the lock (requirements/local.txt,
# or base.txt without the model), checked against its hash; llama-cpp-python from the wheel
# the build stage makes from uv.lock's sdist.

ARG PYTHON_VERSION=3.11

# ---- build: compile llama-cpp-python into a wheel ---------------------------------------
FROM python:${PYTHON_VERSION}-slim AS build
ARG WITH_LOCAL_MODEL=1
# Portable CPU build with the flags pinned in scripts/llama_flags.sh (AVX2 kernels, never AMX,
# no -march=native), so the image runs on any x86-64 host with AVX2, AMX machines included.
ENV CMAKE_BUILD_PARALLEL_LEVEL=4 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    LLAMA_WHEELHOUSE=/wheels
COPY scripts/build_llama.sh scripts/llama_flags.sh /build/
RUN mkdir /wheels && if [ "$WITH_LOCAL_MODEL" = 1 ]; then \
        apt-get update \
        && apt-get install -y --no-install-recommends build-essential cmake \
        && rm -rf /var/lib/apt/lists/* \
        && bash /build/build_llama.sh python portable; \
    fi

# ---- runtime ------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim AS runtime
ARG WITH_LOCAL_MODEL=1
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:$PATH \
    HOST=0.0.0.0 \
    PORT=8000

# llama.cpp is built with OpenMP: the runtime needs libgomp.
RUN if [ "$WITH_LOCAL_MODEL" = 1 ]; then \
        apt-get update \
        && apt-get install -y --no-install-recommends libgomp1 \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /home/app --create-home app

WORKDIR /app
COPY . /app
# The wheels are bind-mounted from the build stage, so they never land in a layer.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    WHEEL_DIR=/wheels SRC=/app MODEL_DIR=/opt/models \
        bash scripts/install.sh /opt/venv "$WITH_LOCAL_MODEL" \
    && rm -rf /app/build /app/*.egg-info

# Where install.sh put the model (unused, and harmless, when WITH_LOCAL_MODEL=0).
ENV LOCAL_MODEL_PATH=/opt/models/gemma-3-270m-q4_k_m.gguf

USER app
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]
# PORT above must match --port: with the embedded model the app calls itself on it.
CMD ["uvicorn", "--factory", "server:create_app", "--host", "0.0.0.0", "--port", "8000"]
