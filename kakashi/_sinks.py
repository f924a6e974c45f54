"""Sinks: where batches of finished lines go (a stream, a file, or any callable).

A sink's ``write`` receives one string of one or more whole lines and either writes all of
it or raises; the engine calls it under ``sink.lock`` and handles the failure (never raised
to the caller, always counted).
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import io
import os
import select
import stat
import sys
import threading
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable


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

    # Set by the engine when a write has not returned for too long: until one returns,
    # nobody waits for this sink (its records are counted as dropped instead).
    stuck = False

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

    def cut_lines(self) -> int:
        """Lines a failed write left cut that the sink will complete at its next write
        (counted as dropped until then)."""
        return 0

    def take_completed(self) -> int:
        """How many cut lines the sink has completed since the last call (the engine then
        counts them as written instead of dropped)."""
        return 0

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

    The path is watched, once per batch, as :class:`logging.handlers.WatchedFileHandler`
    does per record: if the file was removed or renamed (``rm``, logrotate without
    ``copytruncate``), the path is opened again (created if missing) and the batch goes
    there. A disk that fills up in the middle of a line leaves that line cut: the sink keeps
    the rest and writes it first at the next write, so the line is completed in place.
    """

    def __init__(self, path: str | os.PathLike[str], *, mode: int = 0o644) -> None:
        super().__init__()
        path = os.fspath(path)
        if not isinstance(path, str):
            raise TypeError(f"path must be str or os.PathLike[str], got {type(path).__name__}")
        # Absolute, as logging.FileHandler makes it: the path is opened again (after a
        # rename, a rotation, close()), and a chdir() in between must not move the log.
        self.path = os.path.abspath(path)
        self.name = self.path
        self._mode = mode
        self._fd: int | None = None
        # (st_dev, st_ino) of the open file if it is a regular file: the file the path must
        # still name. None for a FIFO or a device, which nobody rotates: not watched.
        self._id: tuple[int, int] | None = None
        self._link: str | None = None  # /proc/self/fd/N of the open file, where usable
        self._real = ""  # what _link reads as while the path names the open file
        self._pipe = False
        # The rest of a line a full disk cut, and the file it belongs in: written before
        # anything else, so the line is completed where it started.
        self._rest = b""
        self._rest_id: tuple[int, int] | None = None
        self._completed = 0  # cut lines completed, not yet reported to the engine
        # Subclasses that watch the size (rotation) need every write to go through
        # _write_all and _on_written; a plain file does not.
        self._plain = type(self)._on_written is FileSink._on_written
        self._open()

    def _open(self) -> int:
        """Open the path (creating it) as the file to write to. Nothing changes if it fails."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), self._mode)
        except OSError as exc:
            raise type(exc)(exc.errno, f"cannot open log file for appending: {exc.strerror}", self.path) from None
        try:
            info = os.fstat(fd)
        except OSError:
            os.close(fd)
            raise
        self._fd = fd
        # A FIFO, /dev/stdout on a pipe: written in PIPE_BUF pieces.
        self._pipe = stat.S_ISFIFO(info.st_mode) or stat.S_ISSOCK(info.st_mode)
        self._id = (info.st_dev, info.st_ino) if stat.S_ISREG(info.st_mode) else None
        self._link, self._real = _fd_link(fd, self.path) if self._id is not None else (None, "")
        if self._rest and (self._id is None or self._id != self._rest_id):
            self._rest = b""  # the cut line is in another file: it cannot be completed here
        return fd

    def write(self, data: str) -> None:
        encoded = data.encode("utf-8", "backslashreplace")
        fd = self._fd
        if fd is not None and self._plain and not self._rest:
            # The usual case: the path still names our file, and one complete write(2).
            # Anything else takes the careful path below.
            ident = self._id
            if ident is not None:
                # Removed or renamed since the last write (rm, logrotate)? Looked at once
                # per batch, as logging.handlers.WatchedFileHandler does per record. On
                # Linux, the name the kernel has for our descriptor says it (it gains
                # " (deleted)", or becomes the new name), for a fifth of the instructions
                # of os.stat (no stat_result to build); a differing name is settled by
                # _current's stat on the careful path.
                link = self._link
                try:
                    if link is not None:
                        same = readlink(link) == self._real
                    else:
                        info = os.stat(self.path)
                        same = info.st_ino == ident[1] and info.st_dev == ident[0]
                except OSError:
                    same = False
            else:  # a FIFO or a device: not watched; to a pipe, big batches go in pieces
                same = not (self._pipe and len(encoded) > PIPE_BUF)
            if same:
                try:
                    written = os.write(fd, encoded)
                except OSError:
                    written = 0  # nothing was written: the careful path tries again and reports
                if written == len(encoded):
                    return
                if written:
                    self._write_all(fd, encoded, written)
                    return
        fd = self._ready()
        if self._pipe and len(encoded) > PIPE_BUF:
            self._write_pieces(fd, encoded)
        else:
            self._write_all(fd, encoded)

    def _ready(self) -> int:
        """The descriptor for the next batch: opened if closed, the rest of a cut line
        written first (in its own file), then the path followed if it names another file."""
        fd = self._fd if self._fd is not None else self._open()
        if self._rest:
            self._finish_line(fd)
        if self._current(fd) is None:
            fd = self._follow()
        return fd

    def _current(self, fd: int) -> os.stat_result | None:
        """The path's stat if the path still names the open file ``fd``, else None (the file
        was removed, or renamed and maybe replaced)."""
        if self._id is None:
            return os.fstat(fd)
        try:
            info = os.stat(self.path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError:  # cannot tell (no search permission on a directory): keep the file
            return os.fstat(fd)
        return info if (info.st_dev, info.st_ino) == self._id else None

    def _follow(self) -> int:
        """Open what the path names now (creating it) and close the old file. If that fails
        and the old file still has a name (it was renamed), keep writing there; if it was
        removed, raise: lines written to it would go nowhere."""
        old = self._fd
        try:
            fd = self._open()
        except OSError:
            if old is not None and _has_name(old):
                return old
            raise
        if old is not None and old != fd:
            with contextlib.suppress(OSError):
                os.close(old)
        return fd

    def _write_all(self, fd: int, encoded: bytes, written: int = 0) -> None:
        """Write ``encoded`` (whole lines; the first ``written`` bytes are out already).
        If the disk fills part-way, the error says how many whole lines made it
        (``lines_written``); the rest of a line cut in the middle is kept and written
        first by the next write, so no line stays cut and none is glued to the next."""
        try:
            if not written:
                written = os.write(fd, encoded)
            while written < len(encoded):  # only on a full disk or a signal
                written += _write_some(fd, memoryview(encoded)[written:])
        except OSError as exc:
            whole = encoded.rfind(b"\n", 0, written) + 1
            if written > whole:
                end = encoded.find(b"\n", written) + 1 or len(encoded)
                self._rest, self._rest_id = encoded[written:end], self._id
            exc.lines_written = encoded.count(b"\n", 0, whole)  # type: ignore[attr-defined]
            raise
        finally:
            self._on_written(written)

    def _finish_line(self, fd: int) -> None:
        """Write the rest of the line a full disk cut. Until it is all out nothing else is
        written (the error says no line was: ``lines_written`` is 0)."""
        rest, written = self._rest, 0
        try:
            while written < len(rest):
                written += _write_some(fd, memoryview(rest)[written:])
        except OSError as exc:
            self._rest = rest[written:]
            exc.lines_written = 0  # type: ignore[attr-defined]
            raise
        finally:
            self._on_written(written)
        self._rest = b""
        self._completed += 1

    def cut_lines(self) -> int:
        return 1 if self._rest else 0

    def take_completed(self) -> int:
        completed, self._completed = self._completed, 0
        return completed

    def _write_pieces(self, fd: int, encoded: bytes) -> None:
        """To a pipe: whole lines in writes of at most PIPE_BUF bytes (each one atomic)."""
        done = 0
        start, end = 0, len(encoded)
        while start < end:
            cut = encoded.rfind(b"\n", start, start + PIPE_BUF) + 1
            if cut <= start:  # one line longer than PIPE_BUF: alone
                cut = encoded.find(b"\n", start + PIPE_BUF) + 1 or end
            try:
                self._write_all(fd, encoded[start:cut])
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
            if self._rest:  # a last try to complete a cut line (kept if the disk is still full)
                with contextlib.suppress(OSError):
                    self._finish_line(fd)
            with contextlib.suppress(OSError):
                os.close(fd)

    def reset_after_fork(self) -> None:
        super().reset_after_fork()
        self._rest = b""  # the parent completes its own cut line; a second copy would tear it

    def fileno(self) -> int | None:
        return self._fd


readlink = os.readlink


def _fd_link(fd: int, path: str) -> tuple[str | None, str]:
    """``/proc/self/fd/N`` for ``fd`` and the name it must read as while the path still
    names the file, or (None, "") where that does not work (no /proc, a name the kernel
    spells otherwise): then the path is compared by os.stat."""
    link = f"/proc/self/fd/{fd}"
    try:
        real = os.path.realpath(path)
        if os.readlink(link) == real:
            return link, real
    except OSError:
        pass
    return None, ""


def _write_some(fd: int, data: memoryview) -> int:
    """One ``write(2)`` that must make progress (a write of nothing would loop forever)."""
    written = os.write(fd, data)
    if not written:
        raise OSError(errno.EIO, "write(2) wrote nothing")
    return written


def _has_name(fd: int) -> bool:
    """Whether the file open as ``fd`` still has a name (a link count above zero)."""
    try:
        return os.fstat(fd).st_nlink > 0
    except OSError:
        return False


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
        meant = _mistyped_stream(spec)
        if meant is not None:
            raise ValueError(
                f"sink {spec!r}: did you mean {meant!r}? (a bare name this close to it is taken for a typo;"
                f" to write to a file of that name, give a path: './{spec}')"
            )
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


def _mistyped_stream(name: str) -> str | None:
    """``"stdout"`` or ``"stderr"`` if ``name`` is a bare name (no directory, no extension)
    within two edits of it, ignoring case (``"stdotu"``, ``"STDOUT"``, ``"sdterr"``)."""
    if "/" in name or os.sep in name or "." in name:
        return None
    lowered = name.lower()
    for stream in ("stdout", "stderr"):
        if _edits(lowered, stream) <= 2:
            return stream
    return None


def _edits(a: str, b: str) -> int:
    """The Levenshtein distance between two short strings."""
    if abs(len(a) - len(b)) > 2:
        return 3  # (more than the caller cares about)
    row = list(range(len(b) + 1))
    for i, char in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, other in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (char != other))
    return row[-1]
