"""The lock: uv.lock, its exports in requirements/, and llama-cpp-python's own pin agree."""

from __future__ import annotations

import importlib.util
import re
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
EXPORTS = ("base", "local", "dev")
LLAMA = "llama-cpp-python"


def _check_lock() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_lock", ROOT / "scripts/check_lock.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("check_lock", module)
    spec.loader.exec_module(module)
    return module


def _uv_lock() -> dict[str, list[dict[str, Any]]]:
    by_name: dict[str, list[dict[str, Any]]] = {}
    for package in tomllib.loads((ROOT / "uv.lock").read_text())["package"]:
        by_name.setdefault(package["name"], []).append(package)
    return by_name


def _pins(name: str) -> list[tuple[str, str, list[str]]]:
    """(name, version, hashes) of every pin in requirements/<name>.txt, markers ignored."""
    text = re.sub(r"\\\n", " ", (ROOT / "requirements" / f"{name}.txt").read_text())
    pins: list[tuple[str, str, list[str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        requirement = line.split(" --hash=", 1)[0]
        hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", line)
        req = Requirement(requirement.strip())
        (spec,) = req.specifier
        pins.append((canonicalize_name(req.name), spec.version, hashes))
    return pins


@pytest.mark.parametrize("export", EXPORTS)
def test_every_export_pins_uv_lock_with_hashes(export: str) -> None:
    locked = _uv_lock()
    pins = _pins(export)
    assert pins
    for name, version, hashes in pins:
        assert hashes, f"{name} has no hash in requirements/{export}.txt"
        assert version in [p["version"] for p in locked[name]], (name, version)
        files = [f for p in locked[name] for f in [p.get("sdist"), *p.get("wheels", [])] if f]
        assert set(hashes) <= {f["hash"].removeprefix("sha256:") for f in files}, name
    assert LLAMA not in {name for name, _, _ in pins}, "build_llama.sh builds llama-cpp-python"


def test_exports_nest_base_local_dev() -> None:
    base, local, dev = ({(n, v) for n, v, _ in _pins(e)} for e in EXPORTS)
    assert base < local < dev
    assert ("numpy" in {n for n, _ in local}) and ("pytest" in {n for n, _ in dev})
    assert "pytest" not in {n for n, _ in local}


def test_llama_pin_is_the_same_in_pyproject_uv_lock_and_build_llama() -> None:
    (package,) = _uv_lock()[LLAMA]
    script = (ROOT / "scripts" / "build_llama.sh").read_text()
    version = re.search(r"LLAMA_CPP_PYTHON_VERSION=(\S+)", script)
    sha = re.search(r"LLAMA_CPP_PYTHON_SHA256=(\S+)", script)
    assert version and sha
    assert version.group(1) == package["version"]
    assert "sha256:" + sha.group(1) == package["sdist"]["hash"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    local = pyproject["project"]["optional-dependencies"]["local"]
    assert f"{LLAMA}=={package['version']}" in local


def test_openai_has_the_decisions_types() -> None:
    (openai,) = _uv_lock()["openai"]
    assert tuple(int(p) for p in openai["version"].split(".")[:2]) >= (3, 57)


def test_check_lock_reads_pins_whose_markers_hold_here(tmp_path: Path) -> None:
    lock = tmp_path / "lock.txt"
    lock.write_text(
        "# comment\n"
        "alpha==1.0 ; python_full_version >= '3.0' \\\n    --hash=sha256:" + "a" * 64 + "\n"
        "    # via beta\n"
        "beta==2.0 ; python_full_version < '3.0' \\\n    --hash=sha256:" + "b" * 64 + "\n"
        "Gamma_Pkg==3.0 \\\n    --hash=sha256:" + "c" * 64 + "\n"
    )
    assert _check_lock().locked(lock) == {"alpha": "1.0", "gamma-pkg": "3.0"}
