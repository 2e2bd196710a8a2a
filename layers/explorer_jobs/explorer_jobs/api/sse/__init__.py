"""The SSE gateway: one Redis reader per process fanning users' event streams out to their clients."""
