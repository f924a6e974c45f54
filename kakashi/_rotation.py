"""RotatingFileSink: a file that rotates by size and time, safe for several processes
sharing the path (an ``flock`` on a lock file beside the log), with optional gzip."""

from __future__ import annotations

import contextlib
import errno
import gzip
import itertools
import os
import stat
import threading
import time
from collections import deque
from collections.abc import Callable

from ._sinks import FileSink
from ._stats import report

try:
    import fcntl
except ImportError:  # Windows: no flock; rotation there is for one process
    fcntl = None  # type: ignore[assignment]


_WHEN_SECONDS = {"S": 1, "M": 60, "H": 3600, "D": 86400}

# The longest a write waits for the lock file another process holds (it holds it for one
# batch or one rotation, normally microseconds). After that the batch is written without
# rotating, and later writes only try the lock once, until they get it again.
FILE_LOCK_TIMEOUT = 5.0

_partial_names = itertools.count()


class RotatingFileSink(FileSink):
    """A :class:`FileSink` that starts a new file when the current one would pass
    ``max_bytes``, or when a time boundary passes (``when``: ``"S"``, ``"M"``, ``"H"``,
    ``"D"`` (every second, minute, hour, day, counted from when the file was opened) or
    ``"midnight"`` (UTC)). Rotated files are ``path.1`` (newest) ... ``path.N``, gzipped to
    ``path.1.gz`` ... when ``compress="gzip"``; at most ``backup_count`` are kept.

    Rotation happens at line boundaries (a write that does not fit is split between lines),
    so a line is never split across files, lost or written twice. A single line longer than
    ``max_bytes`` gets a file of its own. A rotation whose live file was removed or renamed
    meanwhile renames nothing: the path is opened anew.

    Several processes may write and rotate one path (server workers forked from a master
    that configured the sink, or each configuring its own): every batch is written holding
    an ``flock`` on a lock file beside the log (``.NAME.lock``), taken once per batch. Under
    it the sink checks that the path still names its file (another process may have rotated
    it: then it opens the new file rather than rotating again), takes the file's real size,
    rotates if needed and writes. So a size or time boundary makes one rotation across all
    the processes, and no rotated file is overwritten.

    Raises:
        ValueError: ``max_bytes`` < 1, an unknown ``when``, ``backup_count`` < 1, an unknown
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
        # The lock file, opened by this process (an flock belongs to the open file
        # description, which a forked child shares: the child opens its own).
        self._lock_fd: int | None = None
        self._lock_pid = 0
        self._locked = False
        self._lock_stuck = False  # the last wait for the lock timed out
        self._lock_broken = False  # no lock file here (reported once): rotate as one process
        # Rotated files waiting for gzip, as (descriptor, (st_dev, st_ino)); one thread works them.
        self._jobs: deque[tuple[int, tuple[int, int]]] = deque()
        self._jobs_lock = threading.Lock()
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
        may_rotate = self._lock_file()
        try:
            self._write_locked(encoded, may_rotate)
        finally:
            self._unlock_file()

    def _write_locked(self, encoded: bytes, may_rotate: bool) -> None:
        """Write a batch holding the lock file (``may_rotate``: False if another process
        held it too long; the batch is then written where the path points, unrotated)."""
        fd = self._fd if self._fd is not None else self._open()
        if self._rest:
            self._finish_line(fd)  # the cut line ends in its own file, before any rotation
        current = self._current(fd)
        if current is None:  # rotated by another process, removed or renamed: follow the path
            fd = self._follow()
        else:
            self._size = current.st_size  # the real size: other processes append too
        start, end = 0, len(encoded)
        try:
            if may_rotate and self._size > 0 and self._clock() >= self._rollover_at:
                fd, may_rotate = self._rotate_for_batch(fd)
            while start < end:
                piece_end = end
                if may_rotate and self.max_bytes is not None and self._size + (end - start) > self.max_bytes:
                    # Fill this file with the whole lines that fit; the rest goes to the next.
                    room = self.max_bytes - self._size
                    cut = encoded.rfind(b"\n", start, start + room) if room > 0 else -1
                    if cut < 0:
                        if self._size > 0:
                            fd, may_rotate = self._rotate_for_batch(fd)
                            continue
                        cut = encoded.find(b"\n", start)  # one line longer than max_bytes: alone
                        cut = end - 1 if cut < 0 else cut
                    piece_end = cut + 1
                self._write_all(fd, encoded if piece_end - start == end else encoded[start:piece_end])
                start = piece_end
        except OSError as exc:
            exc.lines_written = getattr(exc, "lines_written", 0) + encoded.count(b"\n", 0, start)  # type: ignore[attr-defined]
            raise

    def _rotate_for_batch(self, fd: int) -> tuple[int, bool]:
        """Rotate in the middle of a batch; returns the descriptor to go on with and whether
        the batch may rotate again. A rotation that fails (a rename refused) is reported and
        the batch goes on in the current file: lines are kept, the next batch tries again."""
        try:
            new = self._rotate_locked(fd)
        except OSError as exc:
            report(f"rotate:{id(self)}", f"rotating {self.path!r} failed ({exc}); writing on to the current file")
            return (self._fd if self._fd is not None else fd), False
        return new, new != fd  # the same one: no new file could be opened

    def _on_written(self, size: int) -> None:
        self._size += max(0, size)

    def _slot(self, index: int) -> tuple[str, ...]:
        """The names of rotated file ``index``: gzipped, or not gzipped yet."""
        plain = f"{self.path}.{index}"
        return (plain + ".gz", plain) if self.compress else (plain,)

    def rotate(self) -> None:
        """Start a new file now: shift the backups and rename the live file to ``path.1``.
        If the path no longer names this sink's file (another process rotated it, or it was
        removed), only open the path anew. Call it under the sink's lock."""
        may_rotate = self._lock_file()
        try:
            fd = self._fd if self._fd is not None else self._open()
            if may_rotate:
                self._rotate_locked(fd)
            elif self._current(fd) is None:
                self._follow()
        finally:
            self._unlock_file()

    def _rotate_locked(self, fd: int) -> int:
        """Rotate the file open as ``fd`` (the lock file is held) and return the new file's
        descriptor. The live file is renamed only if the path still names it."""
        if self._rest:  # a cut line ends in its own file (if the disk lets it)
            with contextlib.suppress(OSError):
                self._finish_line(fd)
        ident = self._id
        if ident is not None and self._current(fd) is not None:
            self._shift_backups()
            if self.compress:
                source = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                try:
                    os.replace(self.path, f"{self.path}.1")
                except BaseException:
                    os.close(source)
                    raise
                self._compress_later(source, ident)
            else:
                os.replace(self.path, f"{self.path}.1")
        return self._follow()

    def _shift_backups(self) -> None:
        """Free index 1: the rotated files move up one, as far as the first free index; when
        every index up to ``backup_count`` is taken, the last one is deleted."""
        top = self.backup_count
        for index in range(1, self.backup_count + 1):
            if not any(os.path.lexists(name) for name in self._slot(index)):
                top = index
                break
        else:
            for name in self._slot(top):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(name)
        for index in range(top - 1, 0, -1):
            for source, target in zip(self._slot(index), self._slot(index + 1), strict=True):
                with contextlib.suppress(FileNotFoundError):
                    os.replace(source, target)

    # ---------------------------------------------------------- the lock file

    def _lock_file(self) -> bool:
        """Take the lock file for one batch. Returns whether the batch may rotate: False
        when another process held the lock longer than FILE_LOCK_TIMEOUT."""
        if fcntl is None or self._lock_broken:
            return True  # no flock here: rotation is for one process, as it always was
        fd = self._lock_fd
        if fd is None or self._lock_pid != os.getpid():
            fd = self._open_lock()
            if fd is None:
                return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not _flock_within(fd, 0.0 if self._lock_stuck else FILE_LOCK_TIMEOUT):
                if not self._lock_stuck:
                    report(
                        f"flock:{id(self)}",
                        f"the lock file of {self.path!r} stayed locked by another process for "
                        f"{FILE_LOCK_TIMEOUT}s; writing without rotating until it is free",
                    )
                self._lock_stuck = True
                return False
        except OSError as exc:
            self._lock_broken = True
            report("flock", f"cannot lock {self._lock_path()!r} ({exc}); rotating as a single process")
            return True
        self._lock_stuck = False
        self._locked = True
        return True

    def _unlock_file(self) -> None:
        if self._locked:
            self._locked = False
            try:  # (not contextlib.suppress, which costs more: this runs once per batch)
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)  # type: ignore[arg-type]
            except OSError:  # the descriptor was closed under us: open a new one next time
                self._lock_fd = None

    def _lock_path(self) -> str:
        directory, name = os.path.split(self.path)
        return os.path.join(directory, f".{name}.lock")

    def _open_lock(self) -> int | None:
        """Open the lock file for this process (a forked child never uses its parent's)."""
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)  # a parent's: closing the child's copy frees nothing
        self._lock_fd, self._locked = None, False
        try:
            fd = _open_lock_file(self._lock_path(), self._mode)
        except OSError as exc:
            self._lock_broken = True
            report("flock", f"cannot open {self._lock_path()!r} ({exc}); rotating as a single process")
            return None
        self._lock_fd, self._lock_pid = fd, os.getpid()
        return fd

    # ---------------------------------------------------------- compression

    def _compress_later(self, source: int, ident: tuple[int, int]) -> None:
        """Queue the rotated file open as ``source`` for gzip, in a background thread."""
        with self._jobs_lock:
            self._jobs.append((source, ident))
            if self._compressor is None or not self._compressor.is_alive():
                thread = threading.Thread(target=self._compress_queued, name="kakashi-gzip", daemon=False)
                try:
                    thread.start()
                except RuntimeError:  # interpreter shutdown: the rotated file stays uncompressed
                    self._jobs.pop()
                    os.close(source)
                    return
                self._compressor = thread

    def _compress_queued(self) -> None:
        while True:
            with self._jobs_lock:
                if not self._jobs:
                    self._compressor = None
                    return
                source, ident = self._jobs.popleft()
            try:
                self._compress(source, ident)
            finally:
                with contextlib.suppress(OSError):
                    os.close(source)

    def _compress(self, source: int, ident: tuple[int, int]) -> None:
        """Gzip the rotated file open as ``source`` under a temporary name, then, holding the
        lock file, rename it to ``path.N.gz`` beside wherever the file is now (later rotations
        may have moved it up) and delete the uncompressed file. A reader never sees half a
        gzip file, and a rotation in another process never overwrites one."""
        directory, name = os.path.split(self.path)
        partial = os.path.join(directory, f".{name}.{os.getpid()}.{next(_partial_names)}.gz.tmp")
        lock: int | None = None
        try:
            mode = stat.S_IMODE(os.fstat(source).st_mode)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
            with open(os.open(partial, flags, mode), "wb") as raw:
                packed = gzip.GzipFile(filename="", mode="wb", fileobj=raw)
                offset = _pack(source, packed, 0)
                if fcntl is not None and not self._lock_broken:
                    lock = _open_lock_file(self._lock_path(), self._mode)
                    if not _flock_within(lock, FILE_LOCK_TIMEOUT):
                        raise OSError(errno.EWOULDBLOCK, "the lock file stayed locked")
                # Under the lock nobody appends to the rotated file; one write may have
                # completed a cut line in it since it was read: take that too.
                _pack(source, packed, offset)
                packed.close()
            found = self._find_rotated(ident)
            if found is None:  # deleted meanwhile (backup_count)
                os.remove(partial)
            else:
                os.replace(partial, found + ".gz")
                os.remove(found)
        except OSError as exc:
            report("gzip", f"compressing a rotated file of {self.path!r} failed: {exc}; it is kept uncompressed")
            with contextlib.suppress(OSError):
                os.remove(partial)
        finally:
            if lock is not None:
                with contextlib.suppress(OSError):
                    fcntl.flock(lock, fcntl.LOCK_UN)  # explicitly: a forked child may share it
                with contextlib.suppress(OSError):
                    os.close(lock)

    def _find_rotated(self, ident: tuple[int, int]) -> str | None:
        """The name of the uncompressed rotated file ``ident`` ((st_dev, st_ino)), if any."""
        for index in range(1, self.backup_count + 1):
            names = self._slot(index)
            try:
                info = os.stat(names[-1])
            except FileNotFoundError:
                if not os.path.lexists(names[0]):
                    return None  # the end of the rotated files
                continue
            if (info.st_dev, info.st_ino) == ident:
                return names[-1]
        return None

    def _wait_compressor(self) -> None:
        """Wait until every queued compression is done (not while holding the lock file)."""
        while True:
            with self._jobs_lock:
                thread = self._compressor
            if thread is None or thread is threading.current_thread() or not thread.is_alive():
                return
            thread.join()

    def close(self) -> None:
        if self._rest:  # completing a cut line in a rotated file: under the lock file
            self._lock_file()
        try:
            super().close()
        finally:
            self._unlock_file()
        if self._lock_fd is not None and self._lock_pid == os.getpid():
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None

    def reset_after_fork(self) -> None:
        super().reset_after_fork()
        # The child shares the parent's open lock file, and with it the parent's flock: it
        # opens its own at its first write. The parent's compressions are the parent's.
        self._locked = False
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None
        for source, _ in self._jobs:
            with contextlib.suppress(OSError):
                os.close(source)
        self._jobs.clear()
        self._jobs_lock = threading.Lock()
        self._compressor = None


def _open_lock_file(path: str, mode: int) -> int:
    """Open (creating) a lock file. Read-only is enough for flock, so workers running as
    another user than the master that created it can lock it too."""
    return os.open(path, os.O_RDONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), mode)


def _flock_within(fd: int, seconds: float) -> bool:
    """Take an exclusive flock on ``fd``, polling for at most ``seconds`` (0: one try)."""
    assert fcntl is not None
    deadline = time.monotonic() + seconds
    delay = 0.0001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
        time.sleep(delay)
        delay = min(delay * 2, 0.005)


def _pack(source: int, packed: gzip.GzipFile, offset: int) -> int:
    """Copy ``source`` from ``offset`` to its end into ``packed``; returns the end."""
    while chunk := os.pread(source, 1 << 20, offset):
        packed.write(chunk)
        offset += len(chunk)
    return offset
