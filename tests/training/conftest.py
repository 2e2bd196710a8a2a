from tests.support.databases import isolated_store  # noqa: F401  (fixtures)
from tests.support.training_targets import mysql_target, pg_target  # noqa: F401
