"""Calibration learned from outcomes, kept in a database (issue #18).

``tables``/``migrations``/``db``: the schema, its Alembic migrations and the engine (SQLite
by default, PostgreSQL by ``LOGPROBS_DATABASE_URL``); ``store``: the queries; ``schemas``:
the wire types; ``service``: record outcomes, fit per calibration name with
``chains.calibration_fit``, apply the newest fit; ``api``: the ``/v1/calibrations`` routes.
"""
