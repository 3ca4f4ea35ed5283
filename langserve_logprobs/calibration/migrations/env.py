"""Alembic environment: migrate the connection ``calibration.db.migrate`` hands over.

Run by the service on first use of the database (and again until it succeeds). Outside the
service, ``python -m langserve_logprobs.calibration.db`` migrates ``LOGPROBS_DATABASE_URL``.
"""

from __future__ import annotations

from alembic import context

from langserve_logprobs.calibration.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
