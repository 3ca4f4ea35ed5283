"""A throwaway PostgreSQL server for the tests, from Debian's ``postgresql`` package.

``postgres_server()`` finds ``initdb``/``pg_ctl`` under ``/usr/lib/postgresql/*/bin``
(installing the package with apt-get when it is missing and we are root), makes a cluster
in a temp dir (trust auth, fsync off), starts it on a free loopback port, yields its URL and
stops it. As root it runs the server as the ``postgres`` user (PostgreSQL refuses root).
``PostgresMissingError`` says why there is none; callers fail on it under ``CI``, skip otherwise.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.procs import free_port


class PostgresMissingError(RuntimeError):
    """No PostgreSQL server binaries, and they could not be installed."""


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    return Path(found[-1]).parent if found else None


def _version(path: str) -> float:
    try:
        return float(Path(path).parent.parent.name)
    except ValueError:
        return 0.0


def _install() -> None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        msg = "PostgreSQL is not installed (apt-get install postgresql, as root)"
        raise PostgresMissingError(msg)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "-q", "postgresql"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            msg = f"{' '.join(cmd)} failed: {done.stderr[-500:]}"
            raise PostgresMissingError(msg)


def server_binaries() -> Path:
    """The directory of ``initdb`` and ``pg_ctl``, installed with apt-get if needed."""
    found = _bin_dir()
    if found is None:
        _install()
        found = _bin_dir()
    if found is None:
        msg = "the postgresql package installed no /usr/lib/postgresql/*/bin/initdb"
        raise PostgresMissingError(msg)
    return found


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a fresh PostgreSQL server; yields ``postgresql://postgres@127.0.0.1:PORT/postgres``."""
    bindir = server_binaries()
    root = Path(tempfile.mkdtemp(prefix="logprobs-pg-"))
    data, sockets, logfile = root / "data", root / "sock", root / "server.log"
    sockets.mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        for path in (root, sockets):
            os.chown(path, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    port = free_port()

    def run(*args: str) -> None:
        done = subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = logfile.read_text(errors="replace")[-2000:] if logfile.exists() else ""
            msg = f"{args[0]} failed: {done.stdout[-1000:]} {done.stderr[-1000:]} {log}"
            raise RuntimeError(msg)

    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
    try:
        run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8")
        run(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(logfile), "-w",
            "start")  # fmt: skip
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)
