"""Revisions, oldest first. Alembic reads the `revision`/`down_revision` in each file, not its name."""
