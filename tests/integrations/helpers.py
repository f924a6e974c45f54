"""Helpers shared by the adapter tests: the log records fixture, raw ASGI calls, and
the real servers started on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import kakashi

from conftest import json_records


@pytest.fixture
def records(log_path: Path) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """JSON lines to ``log_path`` at DEBUG; calling the fixture flushes and reads them."""
    kakashi.configure(sink=log_path, format="json", level="DEBUG")
    yield lambda: json_records(log_path)


def access(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The access lines among ``recs``."""
    return [r for r in recs if r["logger"] == "kakashi.access"]


def call_asgi(app: Any, headers: list[tuple[bytes, bytes]], client: str, path: str = "/hello") -> list[Any]:
    """One GET through ``app`` as raw ASGI (headers no HTTP client would send); the messages
    the app sent back."""
    sent: list[Any] = []
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "client": (client, 1234),
        "server": ("test", 80),
        "scheme": "http",
        "http_version": "1.1",
        "root_path": "",
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, seconds: float = 30) -> None:
    """Poll ``url`` until the server answers (any status), or fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            assert time.monotonic() < deadline, f"nothing answered at {url}"
            time.sleep(0.1)


def start_server(command: list[str], *, cwd: Path, env: dict[str, str], url: str) -> subprocess.Popen[str]:
    """Start a server process (its stdout and stderr kept) and wait until ``url`` answers."""
    server = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_up(url)
    except BaseException:
        server.kill()
        server.communicate()
        raise
    return server


def stop_server(server: subprocess.Popen[str], seconds: float = 30) -> tuple[str, str]:
    """SIGTERM the server, wait for it to end (killed after ``seconds``); its stdout and stderr."""
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
    try:
        return server.communicate(timeout=seconds)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()


def wait_for_records(
    path: Path, wanted: Callable[[dict[str, Any]], bool], count: int, seconds: float = 30
) -> list[dict[str, Any]]:
    """Poll the JSON lines another process writes to ``path`` until ``count`` of them are
    ``wanted``, or fail after ``seconds``; those records."""
    deadline = time.monotonic() + seconds
    while True:
        text = path.read_text("utf-8") if path.exists() else ""
        # (only whole lines: the writer may be in the middle of a batch)
        found = [r for r in map(json.loads, text[: text.rfind("\n") + 1].splitlines()) if wanted(r)]
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, f"{len(found)} of {count} records in {path}"
        time.sleep(0.05)
