"""The status function: read a job, list the caller's jobs, queue counts, /healthz, and the reads
on connections (list, get, live schema listing, schema cache)."""

from mangum import Mangum

from explorer_jobs.api.app import create_app
from explorer_jobs.api.routes import connections, status
from explorer_jobs.observability import configure_lambda_logging

configure_lambda_logging()

routers = [status.router, connections.read_router, status.health_router]
app = create_app(routers, title="DB Explorer jobs: status")
handler = Mangum(app, lifespan="off")
