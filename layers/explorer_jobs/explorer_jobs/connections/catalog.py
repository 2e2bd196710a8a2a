"""What a target database lists: its user schemas (system ones left out) and their tables."""

from __future__ import annotations

from sqlalchemy.engine.reflection import Inspector

SYSTEM_SCHEMAS: dict[str, frozenset[str]] = {
    "postgresql": frozenset({"information_schema"}),
    "mysql": frozenset({"information_schema", "mysql", "performance_schema", "sys"}),
    "sqlite": frozenset({"temp"}),
}


def is_system_schema(dialect: str, name: str) -> bool:
    """True for the catalog's own schemas (PostgreSQL reserves every `pg_` name: pg_catalog, pg_toast...)."""
    if dialect == "postgresql" and name.startswith("pg_"):
        return True
    return name.lower() in SYSTEM_SCHEMAS.get(dialect, frozenset())


def user_schemas(inspector: Inspector) -> list[str]:
    """The schemas a user's queries may touch, sorted; for MySQL, every database the login can see."""
    dialect = inspector.dialect.name
    return sorted(name for name in inspector.get_schema_names() if not is_system_schema(dialect, name))


def table_names(inspector: Inspector, schema: str) -> list[str]:
    """A schema's tables (not views), sorted."""
    return sorted(inspector.get_table_names(schema=schema))
