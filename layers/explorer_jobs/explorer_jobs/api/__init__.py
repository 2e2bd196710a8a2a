"""The HTTP edge: the app factory, auth, dependencies, the error table and the routes of each function.

A function's `functions/<name>/app.py` builds its app from the routers here, so the deployed
handlers and the combined local app (`combined.py`) serve the same code.
"""
