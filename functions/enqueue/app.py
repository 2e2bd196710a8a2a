"""The enqueue function: queue a schema training, cancel or retry a job, issue SSE tickets."""

from mangum import Mangum

from explorer_jobs.api.app import create_app
from explorer_jobs.api.routes import enqueue

routers = [enqueue.router]
app = create_app(routers, title="DB Explorer jobs: enqueue")
handler = Mangum(app, lifespan="off")
