"""Settings of the example project. What kakashi needs is marked "kakashi:"; the rest is
the least a Django project needs (no database: no view here uses one).

Run it from this folder (JSON lines to app.log; Django's and the server's own lines in the
same file):

    KAKASHI_EXAMPLE_LOG=app.log python manage.py runserver
    KAKASHI_EXAMPLE_LOG=app.log gunicorn -c ../gunicorn.conf.py shop.wsgi
    KAKASHI_EXAMPLE_LOG=app.log uvicorn shop.asgi:application --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

import os

SECRET_KEY = "example-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
ROOT_URLCONF = "shop.urls"
WSGI_APPLICATION = "shop.wsgi.application"
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

# kakashi: applies KAKASHI at django.setup(), so lines logged at start-up and by management
# commands use it too (the middleware alone applies it when the first handler is built).
INSTALLED_APPS = ["kakashi.integrations.django"]

# kakashi: first, so every other middleware and the view run inside the request context.
MIDDLEWARE = [
    "kakashi.integrations.django.KakashiMiddleware",
    "django.middleware.common.CommonMiddleware",
]

# kakashi: configure() arguments and the middleware's options, in one dict.
KAKASHI = {
    "format": "json",
    "sink": os.environ.get("KAKASHI_EXAMPLE_LOG", "stderr"),
    "level": "INFO",
    "skip_paths": ["/health"],
}

# kakashi: Django's own loggers (and the server's) through kakashi, once. Django's console
# and mail_admins handlers are dropped; every record propagates to the root logger.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"kakashi": {"class": "kakashi.StdlibHandler"}},
    "root": {"handlers": ["kakashi"], "level": "INFO"},
    "loggers": {
        "django": {"level": "INFO", "propagate": True},
        "django.server": {"level": "INFO", "propagate": True},  # runserver's request lines
        # "django.db.backends": {"level": "DEBUG"},  # every SQL query (only with DEBUG = True)
        "uvicorn": {"level": "INFO", "propagate": True},
        "uvicorn.access": {"level": "WARNING", "propagate": True},  # the middleware writes one
        "gunicorn.error": {"level": "INFO", "propagate": True},
    },
}
