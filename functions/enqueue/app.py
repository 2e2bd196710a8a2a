"""The enqueue function: queue a schema training, cancel or retry a job, issue SSE tickets, and
the writes on connections (create, delete, test, drop the schema cache)."""

from mangum import Mangum

from explorer_jobs.api.app import create_app
from explorer_jobs.api.routes import connections, enqueue
from explorer_jobs.observability import configure_lambda_logging

configure_lambda_logging()

routers = [enqueue.router, connections.write_router]
app = create_app(routers, title="DB Explorer jobs: enqueue")
handler = Mangum(app, lifespan="off")
