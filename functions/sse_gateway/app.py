"""The SSE gateway: the caller's job events as Server-Sent Events.

Streams under uvicorn (the Lambda Web Adapter with RESPONSE_STREAM, or a container). Mangum buffers
a whole response, so through `handler` the route answers in long-poll mode instead.
"""

from mangum import Mangum

from explorer_jobs.api.app import create_app
from explorer_jobs.api.routes import stream
from explorer_jobs.observability import configure_lambda_logging

configure_lambda_logging()

routers = [stream.router]
app = create_app(routers, title="DB Explorer jobs: notifications")
handler = Mangum(app, lifespan="off")
