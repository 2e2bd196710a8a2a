"""Alembic migrations of the store, shipped inside the package (see `explorer_jobs.store.migrate`)."""
