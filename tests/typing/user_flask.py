"""A Flask app using the Kakashi extension, as users write it."""

from __future__ import annotations

from flask import Flask

from kakashi.integrations.flask import Kakashi

app = Flask(__name__)
app.config["KAKASHI_SKIP_PATHS"] = ["/health"]
app.config["KAKASHI_CAPTURE_STDLIB"] = "all"
Kakashi(app)


def create_app() -> Flask:
    factory_app = Flask(__name__)
    extension = Kakashi()
    extension.init_app(factory_app)
    return factory_app


# Mistakes mypy must catch.
Kakashi("app")  # type: ignore[arg-type]
Kakashi().init_app()  # type: ignore[call-arg]
