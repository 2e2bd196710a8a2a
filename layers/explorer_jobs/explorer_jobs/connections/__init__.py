"""Users' saved database connections: validation, the host guard, read-only access to the target."""
