"""Sinks: where batches of finished lines go (a stream, a file, or any callable).

A sink's ``write`` receives one string of one or more whole lines and either writes all of
it or raises; the engine calls it under ``sink.lock`` and handles the failure (P5, P6).
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import gzip
import io
import os
import select
import shutil
import stat
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from ._stats import report


def _json_escape_errors(error: UnicodeError) -> tuple[str, int]:
    """A codec error handler: each character the encoding cannot hold as ``\\uXXXX`` (a
    surrogate pair beyond the BMP), the escape JSON strings use."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    out = []
    for char in error.object[error.start : error.end]:
        code = ord(char)
        if code > 0xFFFF:
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
        else:
            out.append(f"\\u{code:04x}")
    return "".join(out), error.end


codecs.register_error("kakashi-json-escape", _json_escape_errors)

# A pipe keeps a write whole (never interleaved with another process's) only up to PIPE_BUF
# bytes: to a pipe, a batch is written in pieces of whole lines no bigger than that.
PIPE_BUF: int = getattr(select, "PIPE_BUF", 512)


def is_pipe(fd: int) -> bool:
    """Whether ``fd`` is a pipe or a socket (where writes of many processes interleave)."""
    try:
        mode = os.fstat(fd).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def pipe_pieces(data: str, limit: int = PIPE_BUF, encoding: str = "utf-8") -> list[str]:
    """``data`` (whole lines) cut at line ends into pieces of at most ``limit`` bytes once
    encoded. A single line longer than ``limit`` is a piece of its own (no write can keep it
    whole on a pipe)."""
    pieces: list[str] = []
    if data.isascii():  # a character is a byte: cut by position
        start, end = 0, len(data)
        while end - start > limit:
            cut = data.rfind("\n", start, start + limit) + 1
            if cut <= start:
                cut = data.find("\n", start + limit) + 1 or end
            pieces.append(data[start:cut])
            start = cut
        if start < end:
            pieces.append(data[start:])
        return pieces
    current: list[str] = []
    size = 0
    for line in data.split("\n")[:-1]:
        length = len(line.encode(encoding, "backslashreplace")) + 1
        if current and size + length > limit:
            pieces.append("".join(current))
            current, size = [], 0
        current.append(line + "\n")
        size += length
    if current:
        pieces.append("".join(current))
    return pieces


def program_name() -> str:
    """The running program's name (``sys.argv[0]``'s base name), for remote sinks."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
    return os.path.basename(argv0) or "python"


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

    def isatty(self) -> bool:
        """Whether the sink is a terminal (the console format colours its levels then)."""
        return False

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
            if isinstance(stream, (io.RawIOBase, io.BufferedIOBase)) or "b" in str(getattr(stream, "mode", "")):
                raise TypeError(f"stream {stream!r} is binary; kakashi writes text: open it in text mode")
            if getattr(stream, "closed", False) is True:
                raise ValueError(f"stream {stream!r} is closed")
            writable = getattr(stream, "writable", None)
            if callable(writable):
                try:
                    ok = writable()
                except Exception:  # noqa: BLE001 - a stream that cannot tell is given the benefit
                    ok = True
                if not ok:
                    raise ValueError(f"stream {stream!r} is not writable")
            self._attr = None
            self._stream = stream
            self.name = type(stream).__name__

    def isatty(self) -> bool:
        stream = getattr(sys, self._attr) if self._attr else self._stream
        try:
            return bool(stream.isatty())  # type: ignore[union-attr]
        except Exception:  # noqa: BLE001 - no isatty, or a closed stream
            return False

    def write(self, data: str) -> None:
        stream = getattr(sys, self._attr) if self._attr else self._stream
        if stream is None:
            raise OSError(errno.EBADF, f"sys.{self._attr} is None")
        if len(data) > PIPE_BUF // 4 and self._to_pipe(stream):
            # Several processes (server workers) share this pipe: pieces of whole lines that
            # each stay one write(2) no bigger than PIPE_BUF, so no line is ever torn.
            encoding = getattr(stream, "encoding", None) or "utf-8"
            for piece in pipe_pieces(data, PIPE_BUF, encoding):
                self._write(stream, piece)
            return
        self._write(stream, data)

    @staticmethod
    def _to_pipe(stream: Any) -> bool:
        try:
            return is_pipe(stream.fileno())
        except Exception:  # noqa: BLE001 - no fileno (StringIO, a test double): not a pipe
            return False

    @staticmethod
    def _write(stream: Any, data: str) -> None:
        try:
            stream.write(data)
        except UnicodeEncodeError:
            # A stream that cannot hold the text (an ASCII or cp1252 console): what it cannot
            # hold becomes \uXXXX escapes, which keep a JSON line valid JSON (Python's
            # backslashreplace writes \xe9, which JSON refuses) and read well in text.
            encoding = getattr(stream, "encoding", None) or "utf-8"
            stream.write(data.encode(encoding, "kakashi-json-escape").decode(encoding))
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
        self._torn = False
        self._pipe = False
        # Subclasses that watch the size (rotation) need every write to go through
        # _write_bytes and _on_written; a plain file does not.
        self._plain = type(self)._on_written is FileSink._on_written
        self._open()

    def _open(self) -> int:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), self._mode)
        except OSError as exc:
            raise type(exc)(exc.errno, f"cannot open log file for appending: {exc.strerror}", self.path) from None
        self._fd = fd
        self._pipe = is_pipe(fd)  # a FIFO, /dev/stdout on a pipe: written in PIPE_BUF pieces
        return fd

    def write(self, data: str) -> None:
        encoded = data.encode("utf-8", "backslashreplace")
        fd = self._fd
        if fd is not None and self._pipe and len(encoded) > PIPE_BUF:
            self._write_pieces(encoded)
            return
        if fd is not None and not self._torn and self._plain:
            # The usual case, one complete write(2); anything else takes the careful path.
            try:
                written = os.write(fd, encoded)
            except OSError:
                written = 0  # nothing was written: the careful path tries again and reports
            if written == len(encoded):
                return
            if written:
                self._write_bytes(encoded, written)
                return
        self._write_bytes(encoded)

    def _write_bytes(self, encoded: bytes | memoryview, written: int = 0) -> None:
        """Write whole lines (the first ``written`` bytes of ``encoded`` are already out).
        If the disk fills part-way, the error says how many whole lines made it
        (``lines_written``) and the next write first ends the torn line, so it is never
        glued to the next record."""
        fd = self._fd if self._fd is not None else self._open()
        fix = b"\n" if self._torn and not written else b""
        encoded = fix + bytes(encoded) if fix else encoded
        try:
            if not written:
                written = os.write(fd, encoded)
            while written < len(encoded):  # only on a full disk or a signal
                written += os.write(fd, memoryview(encoded)[written:])
        except OSError as exc:
            if written:
                self._torn = bytes(encoded[written - 1 : written]) != b"\n"
            whole = bytes(encoded[:written]).count(b"\n") - (1 if fix and written else 0)
            exc.lines_written = max(0, whole)  # type: ignore[attr-defined]
            raise
        finally:
            self._on_written(written - len(fix) if written else 0)
        self._torn = False

    def _write_pieces(self, encoded: bytes) -> None:
        """To a pipe: whole lines in writes of at most PIPE_BUF bytes (each one atomic)."""
        done = 0
        start, end = 0, len(encoded)
        while start < end:
            cut = encoded.rfind(b"\n", start, start + PIPE_BUF) + 1
            if cut <= start:  # one line longer than PIPE_BUF: alone
                cut = encoded.find(b"\n", start + PIPE_BUF) + 1 or end
            try:
                self._write_bytes(memoryview(encoded)[start:cut])
            except OSError as exc:
                exc.lines_written = done + getattr(exc, "lines_written", 0)  # type: ignore[attr-defined]
                raise
            done += encoded.count(b"\n", start, cut)
            start = cut

    def _on_written(self, size: int) -> None:
        """Hook for subclasses that track the file's size."""

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


_WHEN_SECONDS = {"S": 1, "M": 60, "H": 3600, "D": 86400}


class RotatingFileSink(FileSink):
    """A :class:`FileSink` that starts a new file when the current one would pass
    ``max_bytes``, or when a time boundary passes (``when``: ``"S"``, ``"M"``, ``"H"``,
    ``"D"`` (every second, minute, hour, day, counted from when the file was opened) or
    ``"midnight"`` (UTC)). Rotated files are ``path.1`` (newest) ... ``path.N``, gzipped to
    ``path.1.gz`` ... when ``compress="gzip"``; at most ``backup_count`` are kept.

    Rotation happens under the sink's lock and at line boundaries (a write that does not
    fit is split between lines), so a line is never split across files, lost or written
    twice. A single line longer than ``max_bytes`` gets a file of its own. Rotation is
    meant for one process; several processes appending to one file should use
    :class:`FileSink` with an external rotator (each keeps writing whole lines).

    Raises:
        ValueError: ``max_bytes`` < 1, an unknown ``when``, ``backup_count`` < 0, an unknown
            ``compress``, or neither ``max_bytes`` nor ``when``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_bytes: int | None = None,
        when: str | None = None,
        backup_count: int = 5,
        compress: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_bytes is None and when is None:
            raise ValueError("RotatingFileSink needs max_bytes=, when=, or both")
        if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1):
            raise ValueError(f"max_bytes must be a positive int, got {max_bytes!r}")
        if when is not None and when not in _WHEN_SECONDS and when != "midnight":
            raise ValueError(f"unknown when {when!r}; valid: S, M, H, D, midnight")
        if isinstance(backup_count, bool) or not isinstance(backup_count, int) or backup_count < 1:
            # 0 would delete the live log at every rotation.
            raise ValueError(f"backup_count must be an int >= 1, got {backup_count!r}")
        if compress not in (None, "gzip"):
            raise ValueError(f"unknown compress {compress!r}; valid: None, 'gzip'")
        self.max_bytes, self.when, self.backup_count, self.compress = max_bytes, when, backup_count, compress
        self._clock = clock
        self._size = 0
        self._rollover_at = float("inf")
        self._compressor: threading.Thread | None = None
        super().__init__(path)

    def _open(self) -> int:
        fd = super()._open()
        self._size = os.fstat(fd).st_size
        self._rollover_at = self._next_rollover(self._clock())
        return fd

    def _next_rollover(self, now: float) -> float:
        if self.when is None:
            return float("inf")
        if self.when == "midnight":
            return (int(now) // 86400 + 1) * 86400.0
        return now + _WHEN_SECONDS[self.when]

    def write(self, data: str) -> None:
        encoded = data.encode("utf-8", "backslashreplace")
        if self._fd is None:
            self._open()
        if self._size > 0 and self._clock() >= self._rollover_at:
            self.rotate()
        start, end = 0, len(encoded)
        while start < end:
            piece_end = end
            if self.max_bytes is not None and self._size + (end - start) > self.max_bytes:
                # Fill this file with the whole lines that fit; the rest goes to the next.
                room = self.max_bytes - self._size
                cut = encoded.rfind(b"\n", start, start + room) if room > 0 else -1
                if cut < 0:
                    if self._size > 0:
                        self.rotate()
                        continue
                    cut = encoded.find(b"\n", start)  # one line longer than max_bytes: alone
                    cut = end - 1 if cut < 0 else cut
                piece_end = cut + 1
            try:
                self._write_bytes(memoryview(encoded)[start:piece_end])
            except OSError as exc:
                exc.lines_written += encoded.count(b"\n", 0, start)  # type: ignore[attr-defined]
                raise
            start = piece_end

    def _on_written(self, size: int) -> None:
        self._size += max(0, size)

    def _name(self, index: int) -> str:
        return f"{self.path}.{index}" + (".gz" if self.compress else "")

    def rotate(self) -> None:
        """Close the current file, shift the backups, and open a new file (under the lock)."""
        self.close()
        self._wait_compressor()
        with contextlib.suppress(FileNotFoundError):
            os.remove(self._name(self.backup_count))
        for index in range(self.backup_count - 1, 0, -1):
            with contextlib.suppress(FileNotFoundError):
                os.replace(self._name(index), self._name(index + 1))
        if self.compress:
            plain = f"{self.path}.1"
            os.replace(self.path, plain)
            self._compressor = threading.Thread(
                target=_gzip_file, args=(plain, self._name(1)), name="kakashi-gzip", daemon=False
            )
            self._compressor.start()
        else:
            os.replace(self.path, self._name(1))
        self._open()

    def _wait_compressor(self) -> None:
        compressor, self._compressor = self._compressor, None
        if compressor is not None:
            compressor.join()

    def reset_after_fork(self) -> None:
        super().reset_after_fork()
        self._compressor = None


def _gzip_file(source: str, target: str) -> None:
    """Compress ``source`` into ``target`` (written under a temporary name, then renamed
    into place, so a reader never sees half a gzip file), then remove ``source``."""
    try:
        partial = target + ".tmp"
        with open(source, "rb") as src, gzip.open(partial, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(partial, target)
        os.remove(source)
    except OSError as exc:
        report("gzip", f"compressing {source!r} failed: {exc}; the uncompressed file is kept")
