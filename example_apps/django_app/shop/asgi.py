"""ASGI entry point: ``uvicorn shop.asgi:application``.

``with_lifespan`` answers the lifespan protocol that Django refuses: uvicorn re-raises
SIGTERM after its graceful shutdown, so ``atexit`` never runs, and the lifespan shutdown
is where kakashi writes the last lines.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

from kakashi.integrations.django import with_lifespan

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
application = with_lifespan(get_asgi_application())
