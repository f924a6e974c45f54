"""The optional ``INSTALLED_APPS`` entry ``"kakashi.integrations.django"``: Django finds
its app config here, in the package's ``apps`` module."""

from __future__ import annotations

from django.apps import AppConfig


class KakashiConfig(AppConfig):  # type: ignore[misc]  # Django ships no type information
    """The optional ``INSTALLED_APPS`` entry ``"kakashi.integrations.django"``: applies
    ``settings.KAKASHI`` in ``ready()``, so management commands, workers and code that logs
    at start-up get the configuration too (list it first)."""

    default = True

    name = "kakashi.integrations.django"
    label = "kakashi"
    verbose_name = "kakashi"

    def ready(self) -> None:
        from . import apply_settings

        apply_settings()
