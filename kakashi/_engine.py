"""The sync engine: per-thread batches, the background flusher, and the edges
(thread exit, fork, interpreter exit) where lines are most easily lost.

Data path: a logging thread renders its line and appends it to its own list (no lock:
only the owner appends, and ``list.append`` is atomic). A batch is written, with one
``sink.write`` call under the sink's lock, by whoever flushes it: the owner when the list
is full or the record is ERROR+, the flusher thread when the oldest line is getting old or
the owner has died, and ``flush_all`` at exit, fork, shutdown and reconfiguration.

Invariants:
- Flushes of one batch are serialised by ``Batch.lock`` and always take lines from the
  front of the list, so a thread's lines reach the sink in call order, whoever writes them.
- Lock order is ``Batch.lock`` then ``sink.lock``. Neither is ever awaited without a
  timeout, so a thread frozen at interpreter exit while holding one cannot hang the exit.
- A batch remembers the pid that created it; nothing of another process's batch is
  written, so a forked child never repeats its parent's lines.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from types import SimpleNamespace

from ._sinks import Sink, StreamSink
from ._stats import counters, report, reset_reports

# Seconds after a configure() from which the empty batches of the routes it replaced are
# dropped from the registry (loggers are rebuilt within the configure() call itself).
RETIRED_BATCH_AGE = 10.0

# How long any kakashi lock is awaited before giving up (and reporting). Long enough for a
# slow disk, short enough that a wedged sink never hangs the program for good.
LOCK_TIMEOUT = 5.0


class Route:
    """One destination: a sink, plus the format and level it was configured with (used by
    the loggers that render for it). Each route has its own per-thread batches."""

    def __init__(self, sink: Sink, fmt: str = "text", level: int | None = None) -> None:
        self.sink = sink
        self.format = fmt
        self.level = level  # None: every record the logger lets through
        self.tls = threading.local()  # .lines, .batch, .exit  (the hot path reads .lines)
        self.announce: Callable[[str], str] = lambda text: f"kakashi: {text}\n"
        self.lost_unannounced = 0  # lines lost to a failed write, announced on recovery
        self.worker = SimpleNamespace(lines=[])  # the async worker's rendered lines (worker only)
        self.pending: deque[tuple[str, int]] = deque()  # (data, lines) waiting for the writer
        self.written = 0  # lines written to this sink (updated under its lock)
        self.retired_at: float | None = None  # monotonic time configure() replaced it

    def new_batch(self) -> list[str]:
        """Create the calling thread's batch for this route (its first log call)."""
        batch = Batch(self, threading.current_thread())
        with _registry_lock:
            _registry.add(batch)
        tls = self.tls
        tls.batch = batch
        tls.exit = _ThreadExit(batch)
        tls.lines = batch.lines
        _flusher.ensure_running()
        return batch.lines

    def flush_current(self, wait: bool = True) -> None:
        """Write the calling thread's pending lines for this route (``wait``: and return
        only once they are written)."""
        batch = getattr(self.tls, "batch", None)
        if batch is not None:
            flush_batch(batch, wait)

    def __repr__(self) -> str:
        return f"<Route {self.sink!r} format={self.format} level={self.level}>"


class Batch:
    """One thread's pending lines for one route. ``lines`` is appended to by the owner only."""

    __slots__ = ("__weakref__", "lines", "lock", "pid", "route", "thread")

    def __init__(self, route: Route, thread: threading.Thread) -> None:
        self.lines: list[str] = []
        self.lock = threading.Lock()
        self.pid = os.getpid()
        self.route = route
        self.thread = thread


class _ThreadExit:
    """Lives in the owner's thread-local storage; its destructor runs when the thread ends
    and writes what the thread left behind (P4, R2)."""

    __slots__ = ("batch",)

    def __init__(self, batch: Batch) -> None:
        self.batch = batch

    def __del__(self) -> None:
        batch = self.batch
        # After fork the child destroys the other threads' storage: not ours to write.
        # During interpreter finalization the atexit flush already ran; never block there.
        if batch.pid != os.getpid() or sys.is_finalizing():
            return
        try:
            flush_batch(batch)
            _registry.discard(batch)
        except Exception:  # noqa: BLE001 - a destructor must not raise
            pass


# The re-entrancy guard: the idents of the threads inside a kakashi write now. (A set
# rather than a threading.local flag: reading a thread-local costs several times more, and
# the async emitter checks this on every call.)
flushing: set[int] = set()
get_ident = threading.get_ident
_registry: set[Batch] = set()
_registry_lock = threading.Lock()

_routes: list[Route] = [Route(StreamSink("stderr"))]


def flush_batch(batch: Batch, wait: bool = True) -> None:
    """Write every line in ``batch`` that is there now, in order (see write_lines for
    ``wait``)."""
    if not batch.lines:
        return  # nothing to write: no lock needed (checked again under the lock below)
    ident = get_ident()
    if ident in flushing:
        # A sink, a field's __str__ or a __del__ logging from inside a flush of this very
        # thread: leave the lines for the next flush instead of deadlocking or recursing.
        return
    # (No pid check: in a forked child the registry and the forking thread's batch are
    # rebuilt, and the other threads' destructors check the pid themselves.)
    lock = batch.lock
    if not (lock.acquire(False) or lock.acquire(timeout=LOCK_TIMEOUT)):
        return
    flushing.add(ident)
    try:
        lines = batch.lines
        count = len(lines)
        if count == 1:  # (a request's access line at its end: one call, not three)
            data = lines.pop(0)
        elif count:
            data = "".join(lines[:count])  # the owner may append meanwhile: take `count`
            del lines[:count]
        else:
            return
        write_lines(batch.route, data, count, wait)
    finally:
        flushing.discard(ident)
        lock.release()


def _take_and_write(batch: Batch, wait: bool = True) -> None:
    """Take the lines in ``batch`` and hand them to its sink (the caller holds
    ``batch.lock``, so a thread's lines enter the pending list in call order)."""
    lines = batch.lines
    count = len(lines)
    if count:
        data = "".join(lines[:count])
        del lines[:count]
        write_lines(batch.route, data, count, wait)


def in_flush() -> bool:
    """Whether the calling thread is inside a kakashi write (a sink is running)."""
    return get_ident() in flushing


def write_lines(route: Route, data: str, count: int, wait: bool = True) -> None:
    """Hand ``count`` finished lines to ``route``'s sink; failures are counted and
    reported, never raised.

    Group commit: the lines join the route's pending list and whoever holds the sink lock
    writes everything pending in one call. A thread whose batch is merely full
    (``wait=False``) does not wait for a writer that is busy: that writer takes its lines
    next. This keeps write calls (which release the GIL, and so switch threads) few when
    many threads log. With ``wait=True`` the lines are written when this returns.
    """
    pending, sink = route.pending, route.sink
    lock = sink.lock
    if not pending and lock.acquire(False):
        # The common case (nobody else is writing): no detour through the pending list,
        # and, with no notices owed, the write itself is done here (_write_data, inline).
        try:
            if route.lost_unannounced or _dropped_inside[0]:
                _write_data(route, data, count)
            else:
                try:
                    sink.write(data)
                    route.written += count  # under the sink lock
                except Exception as exc:  # noqa: BLE001 - P5: never into the caller
                    _write_failed(route, exc, count)
            while pending:
                _write_pending(route)
        finally:
            lock.release()
        if not pending:
            return
        wait = False  # lines added by threads that did not wait: loop to write them
    else:
        pending.append((data, count))
    while True:
        if not (lock.acquire(False) or (wait and lock.acquire(timeout=LOCK_TIMEOUT))):
            if wait:
                report("lock", f"sink {sink.name!r} stayed locked for {LOCK_TIMEOUT}s; lines are waiting")
            return  # the holder writes what is pending before it lets go
        try:
            while pending:
                _write_pending(route)
        finally:
            sink.lock.release()
        if not pending:  # lines added while we held the lock by threads that did not wait
            return
        wait = False


def _write_pending(route: Route) -> None:
    """Write what ``route.pending`` holds now, in one call (the sink lock is held)."""
    pending = route.pending
    parts: list[str] = []
    count = 0
    while pending:
        data, lines = pending.popleft()
        parts.append(data)
        count += lines
    _write_data(route, "".join(parts), count)


def _write_data(route: Route, data: str, count: int) -> None:
    """Write ``count`` lines (and any notices owed) in one call (the sink lock is held)."""
    sink = route.sink
    notices = 0
    lost = route.lost_unannounced
    if lost:
        data = route.announce(f"kakashi lost {lost:,} records: the sink failed (see stats())") + data
        notices += 1
    inside = _dropped_inside[0]
    if inside:
        data = route.announce(f"kakashi dropped {inside:,} records logged from inside a sink (they would loop)") + data
        notices += 1
    try:
        sink.write(data)
        route.lost_unannounced -= lost
        if inside:
            _dropped_inside[0] -= inside
        route.written += count  # under the sink lock
    except Exception as exc:  # noqa: BLE001 - P5: never into the caller
        _write_failed(route, exc, count, notices, lost, inside)


def _write_failed(route: Route, exc: Exception, count: int, notices: int = 0, lost: int = 0, inside: int = 0) -> None:
    """Account for a failed write of ``count`` lines preceded by ``notices`` notices (which
    announced ``lost`` and ``inside`` records): count and report what was lost."""
    sink = route.sink
    # A partial write (a disk filling up) wrote some whole lines: those count as written.
    done = max(0, getattr(exc, "lines_written", 0) - notices)
    if done or getattr(exc, "lines_written", 0) >= notices > 0:
        route.lost_unannounced -= lost
        if inside:
            _dropped_inside[0] -= inside
    route.written += done
    route.lost_unannounced += count - done
    counters.add(dropped=count - done, sink_errors=1)
    report(
        f"sink:{id(sink)}",
        f"sink {sink.name!r} failed ({type(exc).__name__}: {exc}); {count - done} record"
        f"{'s' * (count - done != 1)} dropped",
    )


# Records logged from inside a sink write that were dropped (async worker, stdlib bridge),
# waiting to be announced by the next write. A one-element list: updated in place.
_dropped_inside = [0]


def drop_inside() -> None:
    """Count a record dropped because it was logged from inside a kakashi write (P6)."""
    _dropped_inside[0] += 1
    counters.add(dropped=1)


def flush_all() -> None:
    """Write every thread's pending lines. Returns when they are written."""
    for batch in list(_registry):
        if batch.lines:  # most threads have nothing pending: skip the call
            flush_batch(batch)


def pending() -> int:
    """Lines accepted but not yet written, across all threads."""
    return sum(len(batch.lines) for batch in list(_registry))


def set_routes(routes: list[Route]) -> list[Route]:
    """Send future records to ``routes`` after writing what is pending to the current ones.
    Returns the routes replaced."""
    global _routes
    flush_all()
    old, _routes = _routes, routes
    replaced = [route for route in old if route not in routes]
    counters.add(written=sum(route.written for route in replaced))
    # Loggers being rebuilt right now may still render a few lines for the old routes (and
    # the async worker renders records queued before the change): those lines still go to
    # the old sink, which is why the replaced routes are kept around for a while.
    now = time.monotonic()
    for route in replaced:
        route.retired_at = now
    _retired[:] = (_retired + replaced)[-16:]
    return old


_retired: list[Route] = []


def retired_routes() -> list[Route]:
    """Routes replaced by recent configure() calls (lines rendered for them still count)."""
    return _retired


def written() -> int:
    """Lines written to every sink since start (or fork)."""
    return counters.written + sum(route.written for route in _routes)


def close_sink(sink: Sink, timeout: float = LOCK_TIMEOUT) -> None:
    """Close ``sink`` under its lock (a write in flight finishes first); never raises. A
    sink still busy after ``timeout`` seconds is left open rather than closed under a write."""
    lock = sink.lock
    if not lock.acquire(timeout=max(0.0, timeout)):
        report("close", f"sink {sink.name!r} stayed busy for {timeout}s; left open")
        return
    try:
        sink.close()
    except Exception as exc:  # noqa: BLE001
        report("close", f"closing sink {sink.name!r} failed: {type(exc).__name__}: {exc}")
    finally:
        lock.release()


def routes() -> list[Route]:
    return _routes


# ---------------------------------------------------------------- the flusher thread


class Flusher:
    """Writes batches whose oldest line has waited long enough (P3) and batches of threads
    that died without their destructor running. One per process, started lazily."""

    def __init__(self) -> None:
        self.interval = 1.0
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._wakeped = False
        self._start_lock = threading.Lock()
        # Flusher thread only: per batch, the first line at the last look and when that was.
        self._seen: dict[Batch, tuple[str, float]] = {}

    def ensure_running(self) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        with self._start_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._wake = threading.Event()
            self._wakeped = False
            self._thread = threading.Thread(target=self._run, name="kakashi-flusher", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        wake = self._wake
        # One look every interval/2: a line is first seen within interval/2 of being logged
        # and written at the next look, at most about `interval` after it was logged. (Each
        # look needs the GIL, and a thread waiting for the GIL makes every GIL release of
        # the busy threads cost a wake-up call: fewer looks, less of that.) The event also
        # wakes the thread when the interval changes, so a new, shorter one applies at once.
        while True:
            if wake.wait(self.interval / 2):
                if self._wakeped:
                    return
                wake.clear()
                continue
            try:
                self.tick(time.monotonic())
            except Exception as exc:  # noqa: BLE001 - the flusher must survive anything
                counters.add(internal_errors=1)
                report("flusher", f"flusher error: {type(exc).__name__}: {exc}")

    def tick(self, now: float) -> None:
        """One look at every batch at time ``now`` (monotonic seconds): a batch whose first
        line was first at the previous look too (interval/2 ago; a little less is close
        enough, as looks are not exactly on time) is written."""
        max_age = self.interval * 0.45
        pid = os.getpid()
        seen = self._seen
        for batch in list(_registry):
            if batch.pid != pid:
                continue
            try:
                first = batch.lines[0]
            except IndexError:
                seen.pop(batch, None)
                retired = batch.route.retired_at
                if retired is not None and now - retired > RETIRED_BATCH_AGE:
                    # An empty batch of a route replaced long ago: no emitter writes there
                    # any more (loggers were rebuilt), so stop looking at it.
                    _registry.discard(batch)
                continue
            if not batch.thread.is_alive():
                flush_batch(batch)
                _registry.discard(batch)
                seen.pop(batch, None)
                continue
            # The same line object still first means nothing was written since we looked:
            # it has waited at least since then. (We hold a reference, so a new line can
            # never reuse its identity.)
            last = seen.get(batch)
            if last is not None and last[0] is first:
                if now - last[1] >= max_age:
                    del seen[batch]
                    flush_batch(batch)
            else:
                seen[batch] = (first, now)

    def stop(self) -> None:
        self._wakeped = True
        self._wake.set()

    def set_interval(self, seconds: float) -> None:
        self.interval = seconds
        self._wake.set()  # wake the thread: it recomputes its wait

    def reset_after_fork(self) -> None:
        self._seen = {}
        self._thread = None
        self._wake = threading.Event()
        self._wakeped = False
        self._start_lock = threading.Lock()


_flusher = Flusher()


def set_flush_interval(seconds: float) -> None:
    _flusher.set_interval(seconds)


# ---------------------------------------------------------------- fork


_held_for_fork: list[threading.Lock] = []


# The longest a fork waits for kakashi's locks, in total. A thread stuck inside a slow
# sink must not stall os.fork(): the child gets fresh locks either way.
FORK_WAIT = 2.0


def _before_fork() -> None:
    # Write everything, then hold every batch lock and the sink lock across the fork so the
    # child's memory holds no half-done flush. Lines appended after this point by other
    # threads stay in the parent only (the child drops other threads' batches).
    deadline = time.monotonic() + FORK_WAIT

    def take(lock: threading.Lock) -> bool:
        if lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            _held_for_fork.append(lock)
            return True
        return False

    if not take(_registry_lock):
        return
    pid = os.getpid()
    for batch in list(_registry):
        if take(batch.lock) and batch.pid == pid:
            _take_and_write(batch, wait=False)  # to the pending list; written just below
    for route in _routes:
        if take(route.sink.lock):
            while route.pending:  # lines of threads that did not wait: write them now
                _write_pending(route)


def _after_fork_parent() -> None:
    while _held_for_fork:
        _held_for_fork.pop().release()


def _after_fork_child() -> None:
    # Never touch a lock inherited from the parent: build new ones.
    global _registry_lock
    _held_for_fork.clear()
    _registry_lock = threading.Lock()
    _registry.clear()
    flushing.clear()  # (the forking thread's ident lives on in the child)
    counters.reset_after_fork()
    reset_reports()
    _flusher.reset_after_fork()
    for route in _routes:
        route.sink.reset_after_fork()
        route.lost_unannounced = 0
        route.pending.clear()  # the parent's lines: the parent writes them
        route.written = 0
        batch = getattr(route.tls, "batch", None)
        if batch is not None:  # the forking thread's own batch carries on in the child
            batch.lock = threading.Lock()
            batch.pid = os.getpid()
            batch.thread = threading.current_thread()
            _registry.add(batch)
    if _registry:
        _flusher.ensure_running()
    _watch_multiprocessing()  # a multiprocessing child runs it before its target


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_parent, after_in_child=_after_fork_child)


# ---------------------------------------------------------------- exit

_exit_hooks: list[Callable[[], None]] = []


def on_exit(hook: Callable[[], None]) -> None:
    """Run ``hook`` at interpreter exit, after the final flush."""
    _exit_hooks.append(hook)


_exit_started = False


def at_exit() -> bool:
    """Whether the interpreter's exit has begun (the atexit flush ran)."""
    return _exit_started


def _at_exit() -> None:
    # Non-daemon threads have been joined by now; daemon threads may still be logging.
    global _exit_started
    _exit_started = True
    _flusher.stop()
    flush_all()
    for hook in _exit_hooks:
        try:
            hook()
        except Exception as exc:  # noqa: BLE001
            report("exit", f"exit hook failed: {type(exc).__name__}: {exc}")
    flush_all()


atexit.register(_at_exit)


# multiprocessing children end with os._exit(), so atexit never runs there: they get the same
# final flush from a multiprocessing finalizer, registered in each child after it starts.
class _Anchor:
    """Something for multiprocessing's after-fork registry to hold on to."""


_MP_ANCHOR = _Anchor()


_mp_child = False  # this process is a multiprocessing child: every record is written at once


def in_multiprocessing_child() -> bool:
    """Whether this process is a multiprocessing child (configure() keeps write-through)."""
    return _mp_child


def _register_mp_exit(_anchor: object) -> None:
    global _mp_child
    _mp_child = True
    util = sys.modules.get("multiprocessing.util")
    if util is not None:
        util.Finalize(None, _at_exit, exitpriority=-100)
    # A pool's workers are often ended by terminate() (SIGTERM, no hook at all): in a
    # multiprocessing child every record is written as it is logged.
    for hook in _exit_hooks:
        try:
            hook()
        except Exception as exc:  # noqa: BLE001
            report("exit", f"exit hook failed: {type(exc).__name__}: {exc}")


def _watch_multiprocessing() -> None:
    util = sys.modules.get("multiprocessing.util")
    if util is not None:
        util.register_after_fork(_MP_ANCHOR, _register_mp_exit)


def start_if_multiprocessing_child() -> None:
    """Called once kakashi is imported (the exit hooks exist by then). A child started by
    spawn or forkserver runs no after-fork hooks, and a child of any start method may
    import kakashi only inside its target: in both cases it is a child already."""
    process = sys.modules.get("multiprocessing.process")
    if process is None or _mp_child:
        return
    current = process.current_process()
    if getattr(current, "_inheriting", False) or process.parent_process() is not None:
        _register_mp_exit(_MP_ANCHOR)


_watch_multiprocessing()  # for children forked after this import
