"""Calibration: decision answers, outcomes and fits.

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "decision_answers",
        sa.Column("decision_id", sa.String(100), primary_key=True),
        sa.Column("answer_index", sa.Integer, primary_key=True),
        sa.Column("question", sa.String(100), nullable=True),
        sa.Column("calibration", sa.String(100), nullable=False),
        sa.Column("choices", sa.JSON, nullable=False),
        sa.Column("probabilities", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "outcomes",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("calibration", sa.String(100), nullable=False),
        sa.Column("decision_id", sa.String(100), nullable=True),
        sa.Column("answer_index", sa.Integer, nullable=True),
        sa.Column("choices", sa.JSON, nullable=False),
        sa.Column("probabilities", sa.JSON, nullable=False),
        sa.Column("outcome", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("calibration", "decision_id", "answer_index", name="uq_outcome_answer"),
    )
    op.create_index("ix_outcomes_calibration", "outcomes", ["calibration"])
    op.create_table(
        "calibration_fits",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("calibration", sa.String(100), nullable=False),
        sa.Column("method", sa.String(20), nullable=True),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("applied", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("outcome_count", sa.Integer, nullable=False),
        sa.Column("report", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_calibration_fits_calibration", "calibration_fits", ["calibration"])


def downgrade() -> None:
    op.drop_table("calibration_fits")
    op.drop_table("outcomes")
    op.drop_table("decision_answers")
