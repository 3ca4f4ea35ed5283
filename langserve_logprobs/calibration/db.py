"""The calibration database: one engine per app, migrated on first use, failures typed.

``LOGPROBS_DATABASE_URL`` picks the database (``postgresql://`` URLs use psycopg 3); unset,
it is SQLite in ``LOGPROBS_DATA_DIR``, in WAL mode with a busy timeout so that concurrent
writers queue instead of failing. The schema is built by the Alembic migrations under
``migrations/`` the first time the database is used; until that succeeds, every use tries
again (a database that was down at startup is picked up when it comes back).

``guard`` turns a database that cannot be reached into ``CalibrationUnavailableError``
(503), so that only calibration calls fail; the plain routes never touch the database.
Run ``python -m langserve_logprobs.calibration.db`` to migrate the configured database.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from langserve_logprobs.errors import CalibrationUnavailableError, ConflictError
from langserve_logprobs.settings import Settings

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_NAME = "langserve-logprobs.sqlite3"
CONNECT_TIMEOUT = 5
"""Seconds to wait for PostgreSQL before a calibration call answers 503."""
SQLITE_BUSY_MS = 30_000
RETRY_AFTER = "5"


def database_url(settings: Settings) -> str:
    """The SQLAlchemy URL: ``LOGPROBS_DATABASE_URL`` (psycopg 3 for PostgreSQL), else SQLite."""
    if settings.database_url is None:
        path = Path(settings.data_dir).expanduser().resolve() / SQLITE_NAME
        return f"sqlite:///{path}"
    url = make_url(settings.database_url.get_secret_value())
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url`` that fails fast when the server is away and reconnects after."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_MS / 1000, "check_same_thread": False}
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    postgres = parsed.get_backend_name() == "postgresql"
    connect_args = {"connect_timeout": CONNECT_TIMEOUT} if postgres else {}
    return create_engine(
        url, pool_pre_ping=True, pool_size=5, max_overflow=10, connect_args=connect_args
    )


def migrate(connection: Connection) -> None:
    """Bring the schema to the newest revision, on ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


class Database:
    """The engine, migrated once (retried until it works), and typed failures."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._ready = False
        self._lock = threading.Lock()

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return make_url(self.url).get_backend_name()

    def _prepare(self) -> Engine:
        with self._lock:
            if self._engine is None:
                if self.backend == "sqlite":
                    database = make_url(self.url).database
                    if database and database != ":memory:":
                        Path(database).parent.mkdir(parents=True, exist_ok=True)
                self._engine = make_engine(self.url)
            if not self._ready:
                with self._engine.begin() as connection:
                    migrate(connection)
                self._ready = True
            return self._engine

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection in a transaction (committed on success); failures are typed.

        Raises:
            CalibrationUnavailableError: the database cannot be reached or used (503).
            ConflictError: a row breaks a unique constraint (409).
        """
        with guard():
            engine = self._prepare()
            with engine.begin() as connection:
                yield connection

    def dispose(self) -> None:
        """Close the pooled connections."""
        if self._engine is not None:
            self._engine.dispose()


@contextmanager
def guard() -> Iterator[None]:
    """Map the database's failures to our errors (unique violations to 409, the rest to 503)."""
    try:
        yield
    except IntegrityError as exc:
        msg = "already recorded: an outcome of this answer under this calibration, or this id"
        raise ConflictError(msg) from exc
    except (DBAPIError, PoolTimeout, SQLAlchemyError, OSError) as exc:
        log.warning("calibration database unavailable: %s", type(exc).__name__)
        msg = "the calibration database is unavailable; decisions without calibration still work"
        raise CalibrationUnavailableError(msg, retry_after=RETRY_AFTER) from exc


def main() -> None:
    """Migrate the configured database (``LOGPROBS_DATABASE_URL`` or the SQLite default)."""
    from langserve_logprobs.settings import get_settings

    database = Database(database_url(get_settings()))
    with database.begin():
        pass
    print(f"migrated the {database.backend} database")


if __name__ == "__main__":
    main()
