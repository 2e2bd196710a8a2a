"""The jobs dashboard: static files (no build step) and the router that serves them.

`router` serves the page at `/` and `/dashboard`, its assets under `/static/`, and, only where the
settings allow it (`explorer-jobs dev`), a demo token at `/dashboard/dev-login`.
"""

from explorer_jobs.dashboard.router import router

__all__ = ["router"]
