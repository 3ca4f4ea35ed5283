"""Check that this virtualenv holds exactly what a lock file pins: `pip freeze` equals the lock.

    .venv/bin/python scripts/check_lock.py requirements/dev.txt [--llama] [--prune]

Run it with the virtualenv's own interpreter. Every pin of the lock whose environment marker
holds here must be installed at that version, and nothing else may be, except:

- pip, the installer;
- this project, installed from the checkout;
- llama-cpp-python, which pip never builds: scripts/build_llama.sh builds it into a wheelhouse
  keyed by its flags. With --llama it must be installed, at the version build_llama.sh pins,
  from a wheel file (pip records the file's URL; an install from an index or pip's cache has
  none).

--prune uninstalls what the lock does not list first (a venv made from an older lock).
Exits 1 and prints every difference otherwise.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker
from packaging.utils import canonicalize_name

HERE = Path(__file__).resolve().parent
PROJECT = "langserve-logprobs"
LLAMA = "llama-cpp-python"
NOT_LOCKED = {"pip", PROJECT, LLAMA}


def locked(lock: Path) -> dict[str, str]:
    """The lock's pins that apply to this interpreter, by canonical name."""
    text = re.sub(r"\\\n", " ", lock.read_text())
    pins: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        requirement, _, rest = line.partition(";")
        marker = rest.split(" --hash", 1)[0].strip()
        if marker and not Marker(marker).evaluate():
            continue
        name, sep, version = requirement.split(" --hash", 1)[0].strip().partition("==")
        if not sep:
            sys.exit(f"{lock}: not an exact pin: {raw!r}")
        pins[canonicalize_name(name)] = version.strip()
    return pins


def frozen() -> dict[str, str]:
    """`pip freeze --all` of this interpreter, by canonical name (non-locked packages left out)."""
    out = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--all", *_excludes()],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    found: dict[str, str] = {}
    for line in out.splitlines():
        if line.startswith(("#", "-e ")):
            continue
        name, sep, version = line.partition("==")
        found[canonicalize_name(name.split(" @ ")[0])] = version if sep else line
    return found


def _excludes() -> list[str]:
    return [arg for name in sorted(NOT_LOCKED) for arg in ("--exclude", name)]


def llama_problem() -> str | None:
    """Why the installed llama-cpp-python is not the one build_llama.sh makes, or None."""
    script = (HERE / "build_llama.sh").read_text()
    match = re.search(r"LLAMA_CPP_PYTHON_VERSION=([0-9][0-9.]*)", script)
    pinned = match.group(1) if match else "?"
    try:
        dist = metadata.distribution(LLAMA)
    except metadata.PackageNotFoundError:
        return f"{LLAMA} is not installed (make llama builds it)"
    if dist.version != pinned:
        return f"{LLAMA} {dist.version} is installed; build_llama.sh pins {pinned}"
    url = json.loads(dist.read_text("direct_url.json") or "{}").get("url", "")
    if not (url.startswith("file://") and url.endswith(".whl")):
        return f"{LLAMA} was not installed from build_llama.sh's wheelhouse (url: {url!r})"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("lock", type=Path)
    parser.add_argument("--llama", action="store_true", help="llama-cpp-python must be there")
    parser.add_argument("--prune", action="store_true", help="uninstall what the lock lacks")
    args = parser.parse_args()
    pins = locked(args.lock)
    if args.prune and (extra := sorted(set(frozen()) - set(pins))):
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-qy", *extra], check=True)
    found = frozen()
    problems = [
        f"{name}: locked {pins.get(name, '(not locked)')}, installed {found.get(name, '(none)')}"
        for name in sorted(set(pins) | set(found))
        if pins.get(name) != found.get(name)
    ]
    if args.llama and (problem := llama_problem()):
        problems.append(problem)
    for problem in problems:
        print(f"check_lock: {problem}", file=sys.stderr)
    if problems:
        print(f"check_lock: this venv differs from {args.lock}", file=sys.stderr)
        return 1
    print(f"check_lock: pip freeze equals {args.lock} ({len(pins)} pins)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
