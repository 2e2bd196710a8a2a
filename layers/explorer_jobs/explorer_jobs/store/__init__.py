"""The service's own store (SQLAlchemy 2): connections, schema cache versions and job history."""
