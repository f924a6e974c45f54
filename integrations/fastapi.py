"""FastAPI uses Starlette's middleware protocol: the same middleware, under this name too.

from kakashi.integrations.fastapi import KakashiMiddleware
app.add_middleware(KakashiMiddleware)
"""

from __future__ import annotations

from .starlette import KakashiMiddleware

__all__ = ["KakashiMiddleware"]
