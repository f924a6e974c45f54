"""A Django project's settings and asgi.py using kakashi, as users write them."""

from __future__ import annotations

from typing import Any

from kakashi.integrations.django import KakashiMiddleware, read_settings, with_lifespan

MIDDLEWARE = [
    "kakashi.integrations.django.KakashiMiddleware",
    "django.middleware.common.CommonMiddleware",
]
KAKASHI: dict[str, Any] = {"format": "json", "sink": "stdout", "skip_paths": ["/health"]}


async def django_application(scope: Any, receive: Any, send: Any) -> None:  # get_asgi_application()
    pass


application = with_lifespan(django_application)


def settings_in_force() -> list[str]:
    config, options = read_settings()
    return sorted(config) + sorted(options.skip_paths)


def middleware(get_response: Any) -> KakashiMiddleware:
    return KakashiMiddleware(get_response)


# Mistakes mypy must catch.
with_lifespan("shop.asgi.application")  # type: ignore[arg-type]
KakashiMiddleware()  # type: ignore[call-arg]
