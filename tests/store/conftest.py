from tests.support.databases import isolated_store  # noqa: F401  (fixture)
