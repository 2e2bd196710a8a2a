#!/bin/sh
# Lambda's Web Adapter (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap) runs this handler as the start command
# and proxies each invocation to the server it starts, streaming the response. The explicit
# PYTHONPATH keeps the function's folder and the explorer_jobs layer (/opt/python) importable, since
# the wrapper does not run the Python runtime that would normally put them there.
PYTHONPATH="${LAMBDA_TASK_ROOT:-.}:/opt/python${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONPATH
# No access log: Lambda logs each invocation already, and uvicorn's lines are not JSON.
exec python -m uvicorn app:app --host 127.0.0.1 --port "${PORT:-8000}" --no-access-log
