"""courses (from approvals), their tutors and participations

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "courses",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("leader_id", sa.String(64), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("slug", sa.String(64), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("max_participants", sa.Integer, nullable=False),
        sa.Column("join_code", sa.String(32), nullable=False),
        sa.Column("join_open", sa.Boolean, nullable=False),
        sa.Column("hub_status", sa.String(16), nullable=False),
        sa.Column("hub_url", sa.String(500), nullable=True),
        sa.Column("hub_status_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("join_code", name="uq_courses_join_code"),
    )
    op.create_index("ix_courses_leader_id", "courses", ["leader_id"])
    op.create_table(
        "course_tutors",
        sa.Column(
            "request_id",
            sa.String(64),
            sa.ForeignKey("courses.request_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("user_id", sa.String(64), primary_key=True),
    )
    op.create_index("ix_course_tutors_user_id", "course_tutors", ["user_id"])
    op.create_table(
        "participations",
        sa.Column("participation_id", sa.String(36), primary_key=True),
        sa.Column(
            "request_id",
            sa.String(64),
            sa.ForeignKey("courses.request_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.UniqueConstraint("request_id", "user_id", name="uq_participations_course_user"),
    )
    op.create_index("ix_participations_user_id", "participations", ["user_id"])
    op.create_index("ix_participations_course_status", "participations", ["request_id", "status"])


def downgrade() -> None:
    op.drop_table("participations")
    op.drop_table("course_tutors")
    op.drop_table("courses")
