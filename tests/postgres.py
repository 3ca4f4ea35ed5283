"""A throwaway PostgreSQL server for the tests, from Debian's ``postgresql`` package.

``postgres_server()`` finds ``initdb``/``pg_ctl`` under ``/usr/lib/postgresql/*/bin``
(installing the package with apt-get when it is missing and we are root), makes a cluster
in a temp dir (trust auth, fsync off), starts it on a free loopback port, yields it (its
``url``; ``stop``/``start`` make an outage) and removes it. As root it runs the server as
the ``postgres`` user (PostgreSQL refuses root).
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


class PostgresServer:
    """A cluster in a temp dir on a free loopback port; ``stop``/``start`` take it down and
    bring it back (same data), as an outage would."""

    def __init__(self) -> None:
        self.bindir = server_binaries()
        self.root = Path(tempfile.mkdtemp(prefix="logprobs-pg-"))
        self.data, self.sockets = self.root / "data", self.root / "sock"
        self.logfile = self.root / "server.log"
        self.sockets.mkdir()
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            for path in (self.root, self.sockets):
                os.chown(path, user.pw_uid, user.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8")

    def _run(self, tool: str, *args: str) -> None:
        command = [*self.prefix, str(self.bindir / tool), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = self.logfile.read_text(errors="replace")[-2000:] if self.logfile.exists() else ""
            msg = f"{tool} failed: {done.stdout[-1000:]} {done.stderr[-1000:]} {log}"
            raise RuntimeError(msg)

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.logfile), "-w",
                  "start")  # fmt: skip

    def stop(self) -> None:
        """Stop the server (fast shutdown: open connections are closed)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        """Delete the cluster's files."""
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A started ``PostgresServer``; stopped and removed afterwards."""
    server = PostgresServer()
    try:
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        server.remove()
