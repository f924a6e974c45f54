"""Views of the example project: every line they log carries the request's fields.

GET /items/<id> (JSON; /items/0 is a 404), GET /async/<id> (an async view), GET /stream
and GET /astream (streamed bodies, sync and async: serve the kind your server runs),
GET /fail (raises), GET /health (no access line).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

import kakashi

log = kakashi.get_logger("shop")


def get_item(request: HttpRequest, item_id: int) -> JsonResponse:
    if item_id == 0:
        raise Http404("no such item")  # a 404, not an error: no traceback logged
    log.info("item requested", item_id=item_id)
    return JsonResponse({"id": item_id, "request_id": kakashi.get_context()["request_id"]})


async def get_item_async(request: HttpRequest, item_id: int) -> JsonResponse:
    log.info("item requested (async)", item_id=item_id)
    await asyncio.sleep(0)
    return JsonResponse({"id": item_id, "request_id": kakashi.get_context()["request_id"]})


def stream(request: HttpRequest) -> StreamingHttpResponse:
    def chunks() -> Iterator[bytes]:
        for i in range(3):
            log.info("chunk", n=i)
            yield f"chunk {i}\n".encode()

    return StreamingHttpResponse(chunks(), content_type="text/plain")


async def stream_async(request: HttpRequest) -> StreamingHttpResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(3):
            log.info("chunk", n=i)
            await asyncio.sleep(0)
            yield f"chunk {i}\n".encode()

    return StreamingHttpResponse(chunks(), content_type="text/plain")


def fail(request: HttpRequest) -> HttpResponse:
    log.warning("about to fail")
    raise RuntimeError("the failing view failed")


def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")
