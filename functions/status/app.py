"""The status function: read a job, list the caller's jobs, queue counts, and /healthz."""

from mangum import Mangum

from explorer_jobs.api.app import create_app
from explorer_jobs.api.routes import status

routers = [status.router, status.health_router]
app = create_app(routers, title="DB Explorer jobs: status")
handler = Mangum(app, lifespan="off")
