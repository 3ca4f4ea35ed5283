"""The calibration database's tables (SQLAlchemy Core), the schema the migrations build.

* ``decision_answers``: each answer of a decision made with a calibration name, with its raw
  distribution, so an outcome can name the decision by id.
* ``outcomes``: which value turned out right for an answer (by decision id, or given with its
  values and raw distribution), under a calibration name.
* ``calibration_fits``: every fit made, newest last; its id is the fit's version.

Values are JSON (a string, a boolean or an integer: OpenAI's choice values are typed).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()
Id = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER only
NAME_LENGTH = 100
DECISION_ID_LENGTH = 100

decision_answers = Table(
    "decision_answers",
    metadata,
    Column("decision_id", String(DECISION_ID_LENGTH), primary_key=True),
    Column("answer_index", Integer, primary_key=True),
    Column("question", String(NAME_LENGTH), nullable=True),
    Column("calibration", String(NAME_LENGTH), nullable=False),
    Column("choices", JSON, nullable=False),
    Column("probabilities", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

outcomes = Table(
    "outcomes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("calibration", String(NAME_LENGTH), nullable=False, index=True),
    Column("decision_id", String(DECISION_ID_LENGTH), nullable=True),
    Column("answer_index", Integer, nullable=True),
    Column("choices", JSON, nullable=False),
    Column("probabilities", JSON, nullable=False),
    Column("outcome", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # NULL decision ids are distinct, so only outcomes of recorded decisions are unique
    UniqueConstraint("calibration", "decision_id", "answer_index", name="uq_outcome_answer"),
)

calibration_fits = Table(
    "calibration_fits",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("calibration", String(NAME_LENGTH), nullable=False, index=True),
    Column("method", String(20), nullable=True),
    Column("params", JSON, nullable=False),
    Column("applied", Boolean, nullable=False),
    Column("reason", Text, nullable=False),
    Column("outcome_count", Integer, nullable=False),
    Column("report", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
