"""gunicorn settings for the example apps.

kakashi needs no hook to be correct under gunicorn: batches are written before a fork
(so --preload never duplicates a line), each worker starts its own flusher, and a worker
that exits normally writes what it has at interpreter exit. The hooks below make the
worker's last lines explicit anyway and show where a service would add its own.
"""

from __future__ import annotations

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
worker_class = "sync"
graceful_timeout = 10
accesslog = None  # the extension writes one access line per request


def post_fork(server: object, worker: object) -> None:
    import kakashi

    kakashi.get_logger("gunicorn.worker").info("worker started", pid=os.getpid())


def worker_exit(server: object, worker: object) -> None:
    import kakashi

    kakashi.get_logger("gunicorn.worker").info("worker exiting", pid=os.getpid())
    kakashi.shutdown()
