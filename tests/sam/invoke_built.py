"""Run inside a bare interpreter (`python -S -I`) with only a built function and the built layer on
sys.path, as Lambda would: register a connection, then invoke the function's handler with an
API Gateway or EventBridge event. Prints the handler's answer as JSON.

argv: <build dir> <function logical id> <event file> <connection-id placeholder user>
"""

import json
import sys
import time

build, function, event_file, user = sys.argv[1:5]
sys.path[:0] = [f"{build}/{function}", f"{build}/ExplorerJobsLayer/python"]

import jwt  # noqa: E402  (from the built layer only)

from explorer_jobs.connections.models import ConnectionCreate  # noqa: E402
from explorer_jobs.connections.service import create_connection  # noqa: E402
from explorer_jobs.settings import get_settings  # noqa: E402
from explorer_jobs.store.migrate import upgrade_database  # noqa: E402

upgrade_database()
connection = create_connection(
    user,
    ConnectionCreate(
        name="pg",
        dialect="postgresql",
        host="127.0.0.1",
        port=5432,
        database="postgres",
        username="postgres",
        password="not-used-by-trust",
        trainingSchedule="* * * * *",
    ),
)
secret = get_settings().JWT_SECRET
assert secret is not None
token = jwt.encode({"sub": user, "exp": int(time.time()) + 600}, secret.get_secret_value(), algorithm="HS256")
with open(event_file) as f:
    raw = f.read().replace("${TOKEN}", token).replace("/c1/", f"/{connection.id}/")
event = json.loads(raw)
event["time"] = time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime())


class Context:
    function_name = function
    memory_limit_in_mb = 256
    invoked_function_arn = f"arn:aws:lambda:eu-west-1:123456789012:function:{function}"
    aws_request_id = "req-1"


import app  # noqa: E402  (the function's own module, from the build folder)

answer = app.handler(event, Context())
print(
    json.dumps(
        {
            "answer": answer,
            "connection": connection.id,
            "modules": sorted(m for m in sys.modules if m.split(".")[0] in ("pg8000", "pymysql", "psycopg2")),
        }
    )
)
