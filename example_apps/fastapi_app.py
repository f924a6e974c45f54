"""A small FastAPI service logging with kakashi.

Run it (JSON lines to app.log, uvicorn's own lines in the same file):

    KAKASHI_EXAMPLE_LOG=app.log uvicorn example_apps.fastapi_app:app --host 127.0.0.1 --port 8000

Endpoints: GET /items/{id} (JSON), GET /sync (a sync endpoint, run in the threadpool),
GET /stream (a streaming response), GET /fail (raises), GET /health (no access line).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import StreamingResponse

import kakashi
from kakashi.integrations.fastapi import KakashiMiddleware

kakashi.configure(format="json", sink=os.environ.get("KAKASHI_EXAMPLE_LOG", "stderr"), level="INFO")
log = kakashi.get_logger("shop")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    kakashi.capture_stdlib("INFO")  # uvicorn has set up its logging by now: take it over
    log.info("shop starting")
    yield
    log.info("shop stopping")


app = FastAPI(lifespan=lifespan)
app.add_middleware(KakashiMiddleware, skip_paths=["/health"])


@app.get("/items/{item_id}")
async def get_item(item_id: int) -> dict[str, object]:
    log.info("item requested", item_id=item_id)
    await asyncio.sleep(0)
    return {"id": item_id, "request_id": kakashi.get_context()["request_id"]}


@app.get("/sync")
def sync_endpoint() -> dict[str, str]:
    log.info("in the threadpool")  # carries the request's context too
    return {"ok": "yes"}


@app.get("/stream")
async def stream() -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(3):
            log.info("chunk", n=i)
            yield f"chunk {i}\n".encode()

    return StreamingResponse(chunks(), media_type="text/plain")


@app.get("/fail")
async def fail() -> None:
    log.warning("about to fail")
    raise RuntimeError("the failing endpoint failed")


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
