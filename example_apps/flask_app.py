"""A small Flask app logging with kakashi.

    KAKASHI_EXAMPLE_LOG=app.log flask --app example_apps/flask_app run
    KAKASHI_EXAMPLE_LOG=app.log gunicorn -c example_apps/gunicorn.conf.py example_apps.flask_app:app

Views: GET /items/<id> (JSON), GET /stream (streamed), GET /fail (raises), GET /health
(no access line), and a blueprint under /admin (GET /admin/forbidden aborts with 403).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from flask import Blueprint, Flask, Response, abort, jsonify, stream_with_context

import kakashi
from kakashi.integrations.flask import Kakashi

kakashi.configure(format="json", sink=os.environ.get("KAKASHI_EXAMPLE_LOG", "stderr"))
log = kakashi.get_logger("shop")
log.info("shop module imported", pid=os.getpid())

admin = Blueprint("admin", __name__, url_prefix="/admin")


@admin.get("/forbidden")
def forbidden() -> Response:
    log.warning("admin area refused")
    abort(403)


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["KAKASHI_SKIP_PATHS"] = ["/health"]
    Kakashi(app)
    app.register_blueprint(admin)

    @app.get("/items/<int:item_id>")
    def get_item(item_id: int) -> Response:
        log.info("item requested", item_id=item_id)
        return jsonify(id=item_id, request_id=kakashi.get_context()["request_id"])

    @app.get("/stream")
    def stream() -> Response:
        @stream_with_context
        def chunks() -> Iterator[str]:
            for i in range(3):
                log.info("chunk", n=i)
                yield f"chunk {i}\n"

        return Response(chunks(), mimetype="text/plain")

    @app.get("/fail")
    def fail() -> Response:
        log.warning("about to fail")
        raise RuntimeError("the failing view failed")

    @app.get("/health")
    def health() -> Response:
        return jsonify(status="ok")

    return app


app = create_app()
