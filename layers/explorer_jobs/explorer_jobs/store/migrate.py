"""Apply the store's Alembic migrations programmatically (`explorer-jobs migrate`, `explorer-jobs dev`)."""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config

from explorer_jobs.settings import get_settings
from explorer_jobs.store.engine import create_store_engine


def alembic_config() -> Config:
    """An Alembic config whose scripts are the ones shipped inside the installed package."""
    config = Config()
    # files() resolves inside site-packages for a regular install, and in the source tree when editable.
    config.set_main_option("script_location", str(files("explorer_jobs") / "migrations"))
    return config


def upgrade_database(url: str | None = None, revision: str = "head") -> None:
    """Bring the store at `url` (default: the configured `DATABASE_URL`) up to `revision`.

    Safe to run on every start: a store already at `revision` is left as it is.
    """
    config = alembic_config()
    # The connection goes in through attributes, not `sqlalchemy.url`: the ini parser would read
    # a percent-encoded password in the URL as interpolation.
    engine = create_store_engine(url or get_settings().database_url())
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()
