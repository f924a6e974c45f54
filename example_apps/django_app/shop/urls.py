"""URLs of the example project."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("items/<int:item_id>", views.get_item),
    path("async/<int:item_id>", views.get_item_async),
    path("stream", views.stream),
    path("astream", views.stream_async),
    path("fail", views.fail),
    path("health", views.health),
]
