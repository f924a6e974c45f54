"""Sinks: where batches of finished lines go (a stream, a file, or any callable).

A sink's ``write`` receives one string of one or more whole lines and either writes all of
it or raises; the engine calls it under ``sink.lock`` and handles the failure (P5, P6).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class SupportsWrite(Protocol):
    def write(self, data: str, /) -> Any: ...


class Sink:
    """Base class. Subclasses implement :meth:`write`; :meth:`close` is optional."""

    name = "sink"

    def __init__(self) -> None:
        # Serialises writes to this sink; held across os.fork so a child never inherits a
        # half-written batch. Rebuilt in the child by reset_after_fork().
        self.lock = threading.Lock()

    def write(self, data: str) -> None:
        """Write ``data`` (whole lines, each ending in a newline) or raise."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the sink opened. Writing again later reopens it where possible."""

    def reset_after_fork(self) -> None:
        self.lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class StreamSink(Sink):
    """Writes to a text stream. ``"stderr"`` and ``"stdout"`` are looked up on :mod:`sys` at
    each write, so redirection (pytest's capture, ``contextlib.redirect_stderr``) is followed.
    """

    def __init__(self, stream: str | SupportsWrite = "stderr") -> None:
        super().__init__()
        if isinstance(stream, str):
            if stream not in ("stderr", "stdout"):
                raise ValueError(f"unknown stream {stream!r}; use 'stderr' or 'stdout'")
            self._attr: str | None = stream
            self._stream: SupportsWrite | None = None
            self.name = stream
        else:
            if not callable(getattr(stream, "write", None)):
                raise TypeError(f"stream must have a write(str) method, got {type(stream).__name__}")
            self._attr = None
            self._stream = stream
            self.name = type(stream).__name__

    def write(self, data: str) -> None:
        stream = getattr(sys, self._attr) if self._attr else self._stream
        if stream is None:
            raise OSError(errno.EBADF, f"sys.{self._attr} is None")
        try:
            stream.write(data)
        except UnicodeEncodeError:
            encoding = getattr(stream, "encoding", None) or "utf-8"
            stream.write(data.encode(encoding, "backslashreplace").decode(encoding))
        flush = getattr(stream, "flush", None)
        if flush is not None:
            flush()


class FileSink(Sink):
    """Appends to a file opened with ``O_APPEND``: every batch is one ``write(2)``, so lines
    from several processes sharing the file never interleave. Opened at construction (a bad
    path fails there, not at the first log call) and reopened on demand after :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike[str], *, mode: int = 0o644) -> None:
        super().__init__()
        self.path = os.fspath(path)
        if not isinstance(self.path, str):
            raise TypeError(f"path must be str or os.PathLike[str], got {type(self.path).__name__}")
        self.name = self.path
        self._mode = mode
        self._fd: int | None = None
        self._open()

    def _open(self) -> int:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), self._mode)
        except OSError as exc:
            raise type(exc)(exc.errno, f"cannot open log file for appending: {exc.strerror}", self.path) from None
        self._fd = fd
        return fd

    def write(self, data: str) -> None:
        fd = self._fd if self._fd is not None else self._open()
        view = memoryview(data.encode("utf-8", "backslashreplace"))
        while view:
            # A short write only happens on a full disk or a signal; write the rest.
            view = view[os.write(fd, view) :]

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def fileno(self) -> int | None:
        return self._fd


class CallableSink(Sink):
    """Calls ``func(data)`` with a string of one or more whole lines."""

    def __init__(self, func: Callable[[str], Any]) -> None:
        super().__init__()
        if not callable(func):
            raise TypeError(f"func must be callable, got {type(func).__name__}")
        self._func = func
        self.name = getattr(func, "__qualname__", type(func).__name__)

    def write(self, data: str) -> None:
        self._func(data)


def make_sink(spec: object) -> Sink:
    """Build a sink from what ``configure(sink=...)`` accepts.

    ``"stderr"`` / ``"stdout"``, a path (``str`` or ``os.PathLike``), a :class:`Sink`, an
    object with ``write(str)``, or a callable taking a string of whole lines.
    """
    if isinstance(spec, Sink):
        return spec
    if isinstance(spec, str):
        if spec in ("stderr", "stdout"):
            return StreamSink(spec)
        if not spec.strip():
            raise ValueError("sink path must not be empty; use 'stderr', 'stdout', a path, a stream or a callable")
        return FileSink(spec)
    if isinstance(spec, os.PathLike):
        return FileSink(spec)
    if isinstance(spec, (bytes, bytearray)):
        raise TypeError("sink path must be str or os.PathLike, not bytes")
    if callable(getattr(spec, "write", None)):
        return StreamSink(spec)  # type: ignore[arg-type]
    if callable(spec):
        return CallableSink(spec)
    raise TypeError(
        f"invalid sink {spec!r}: use 'stderr', 'stdout', a path, an object with write(str), "
        "or a callable taking a string"
    )
