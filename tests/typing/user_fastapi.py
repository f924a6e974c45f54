"""FastAPI and Starlette apps using KakashiMiddleware, as users write them."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import Scope

from kakashi.integrations.fastapi import KakashiMiddleware
from kakashi.integrations.starlette import KakashiMiddleware as StarletteMiddleware


def tenant(scope: Scope) -> Mapping[str, str]:
    return {"tenant": dict(scope["headers"]).get(b"x-tenant", b"-").decode()}


def levels(status: int) -> str:
    return "ERROR" if status >= 500 else "INFO"


app = FastAPI()
app.add_middleware(KakashiMiddleware)
app.add_middleware(KakashiMiddleware, skip_paths=["/health"])
app.add_middleware(
    KakashiMiddleware,
    request_id_header="X-Trace-ID",
    skip_paths={"/health", "/ready"},
    log_query=True,
    trusted_proxies=("10.0.0.0/8",),
    headers=["accept"],
    logger="access",
    status_levels=levels,
    request_fields=tenant,
    debug=False,
)

plain = Starlette(middleware=[Middleware(StarletteMiddleware, skip_paths=["/health"])])
wrapped = KakashiMiddleware(app, skip_paths=["/health"])  # the whole app, wrapped

# Each of these is a mistake mypy must catch (warn_unused_ignores fails the run otherwise).
app.add_middleware(KakashiMiddleware, skip_pathz=["/health"])  # type: ignore[call-arg]
app.add_middleware(KakashiMiddleware, log_query="yes")  # type: ignore[arg-type]
app.add_middleware(KakashiMiddleware, skip_paths=[1])  # type: ignore[list-item]
app.add_middleware(KakashiMiddleware, status_levels="myapp.levels")  # type: ignore[arg-type]
Middleware(StarletteMiddleware, trusted_proxy=["10.0.0.1"])  # type: ignore[call-arg]
KakashiMiddleware(app, "/health")  # type: ignore[call-arg]
