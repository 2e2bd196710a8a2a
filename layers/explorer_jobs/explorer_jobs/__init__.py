"""DB Explorer's async job system: the shared layer (queue, worker, events, auth, store, training)."""

__version__ = "0.1.0"
