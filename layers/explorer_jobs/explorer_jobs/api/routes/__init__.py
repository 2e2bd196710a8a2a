"""The routers of the HTTP functions: `enqueue`, `status` and `stream` (the SSE gateway)."""
