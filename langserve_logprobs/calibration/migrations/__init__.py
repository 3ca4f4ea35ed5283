"""Alembic migrations of the calibration database (run by ``calibration.db.migrate``)."""
