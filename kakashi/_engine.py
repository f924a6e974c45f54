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
        # Lines lost to a failed write, and lines dropped while the sink was stuck: announced
        # by its next write. (Changed under counters.lock: threads without the sink lock add.)
        self.lost_unannounced = 0
        self.stuck_dropped = 0
        self.worker = SimpleNamespace(lines=[])  # the async worker's rendered lines (worker only)
        # (data, lines, Event or None) waiting for the writer; the Event of a caller that
        # waits for its lines is set once they are written.
        self.pending: deque[tuple[str, int, threading.Event | None]] = deque()
        self.written = 0  # lines written to this sink (updated under its lock)
        self.inflight = 0  # lines inside the sink's write call now (under its lock)
        self.retired_at: float | None = None  # monotonic time configure() replaced it
        self.closed = False  # configure() or shutdown() closed its sink

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

    __slots__ = ("__weakref__", "lines", "lock", "pid", "route", "taken", "taking", "thread")

    def __init__(self, route: Route, thread: threading.Thread) -> None:
        self.lines: list[str] = []
        # Lines handed to the sink so far, and lines taken and being handed over now (both
        # changed under the lock): flush() watches them instead of waiting for the lock.
        self.taken = 0
        self.taking = 0
        self.lock = threading.Lock()
        self.pid = os.getpid()
        self.route = route
        self.thread = thread


class _ThreadExit:
    """Lives in the owner's thread-local storage; its destructor runs when the thread ends
    and writes what the thread left behind (no loss at thread exit)."""

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
            if not batch.lines:  # (else the flusher writes them: it looks at dead threads)
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


def flush_batch(batch: Batch, wait: bool = True, deadline: float | None = None) -> bool:
    """Write every line in ``batch`` that is there now, in order. With ``wait``, return
    once they are written (True), or False if that did not happen by ``deadline``
    (monotonic seconds; default: ``LOCK_TIMEOUT`` from now)."""
    if not batch.lines:
        return True  # nothing to write: no lock needed (checked again under the lock below)
    ident = get_ident()
    if ident in flushing:
        # A sink, a field's __str__ or a __del__ logging from inside a flush of this very
        # thread: leave the lines for the next flush instead of deadlocking or recursing.
        return False
    # (No pid check: in a forked child the registry and the forking thread's batch are
    # rebuilt, and the other threads' destructors check the pid themselves.)
    lock = batch.lock
    if not lock.acquire(False):
        # Another thread is writing this batch (its owner, the flusher, a flush()): its
        # lines go out with that write or the next one. Wait only if the sink is not stuck
        # (a stuck write holds this lock for as long as it hangs).
        if batch.route.sink.stuck:
            return False
        timeout = LOCK_TIMEOUT if deadline is None else deadline - time.monotonic()
        if timeout <= 0 or not lock.acquire(timeout=timeout):
            return False
    return _flush_held(batch, wait, deadline, ident)


def _flush_held(batch: Batch, wait: bool, deadline: float | None, ident: int, defer: bool = False) -> bool:
    """flush_batch once ``batch.lock`` is held: take the lines and hand them over under the
    lock, then let go of it before writing (a writer that goes on to write other threads'
    lines must not keep this batch locked meanwhile). ``defer``: only add the lines to the
    route's pending list (the caller writes that list at once afterwards)."""
    lock = batch.lock
    route = batch.route
    flushing.add(ident)
    try:
        try:
            lines = batch.lines
            count = len(lines)
            if not count:
                return True
            # (`taking` first: whoever reads `lines` then `taking` never sees both empty
            # while lines are on their way.)
            batch.taking = count
            if count == 1:  # (a request's access line at its end: one call, not three)
                data = lines.pop(0)
            else:
                data = "".join(lines[:count])  # the owner may append meanwhile: take `count`
                del lines[:count]
            if defer:
                route.pending.append((data, count, None))
                handed: object = None
            else:
                handed = _hand(route, data, count, wait)
            batch.taken += count
            batch.taking = 0
        finally:
            lock.release()
        if defer:
            return True
        if handed is _OWNED:
            _write_owned(route, data, count)
            return True
        return handed is not _DROPPED and _after_queued(route, handed, deadline)
    finally:
        flushing.discard(ident)


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


def write_lines(route: Route, data: str, count: int, wait: bool = True, deadline: float | None = None) -> bool:
    """Hand ``count`` finished lines to ``route``'s sink; failures are counted and
    reported, never raised. Returns False when the lines were not written by the time
    this returns although ``wait`` asked for it (they stay pending, or were dropped
    because the sink is stuck).

    Group commit: the lines join the route's pending list and whoever holds the sink lock
    writes everything pending in one call before it lets go of the lock (every release
    goes through ``_drain_and_release``). A thread whose batch is merely full
    (``wait=False``) does not wait for a writer that is busy: that writer takes its lines
    next. This keeps write calls (which release the GIL, and so switch threads) few when
    many threads log. With ``wait=True`` the caller waits until the writer has written its
    lines (it is told by an Event, not by winning the lock, which a busy writer's peers
    may keep winning), until ``deadline`` at most.

    A sink whose write has not returned for ``LOCK_TIMEOUT`` seconds (or past a
    ``flush``/``shutdown`` deadline) is marked stuck: until it returns, callers do not wait
    for it, and their lines are counted as dropped and announced once it writes again.
    """
    handed = _hand(route, data, count, wait)
    if handed is _OWNED:
        _write_owned(route, data, count)
        return True
    return handed is not _DROPPED and _after_queued(route, handed, deadline)


# What _hand did with the lines: the caller holds the sink lock and writes them itself, or
# they were dropped (a stuck sink); else the Event (or None) they joined the pending list with.
_OWNED = object()
_DROPPED = object()


def _hand(route: Route, data: str, count: int, wait: bool) -> object:
    """The first half of write_lines: hand the lines over, without writing anything. Done
    under a batch's lock by flush_batch, so that a thread's lines reach the sink in order
    whoever flushes them, while the write (and the group commit of other threads' lines)
    happens after that lock is let go."""
    pending, sink = route.pending, route.sink
    if not pending and sink.lock.acquire(False):
        return _OWNED  # the common case (nobody else is writing): no detour via the list
    if sink.stuck:
        if sink.lock.acquire(False):  # it came back meanwhile
            pending.append((data, count, None))
            _drain_and_release(route)
            return None
        _drop_stuck(route, count)
        return _DROPPED
    done = threading.Event() if wait else None
    pending.append((data, count, done))
    return done


def _write_owned(route: Route, data: str, count: int) -> None:
    """Write lines while holding the sink lock (taken by _hand), then release it."""
    sink, pending = route.sink, route.pending
    lock = sink.lock
    # With no notices owed, the write itself is done here (_write_data, inline).
    if route.lost_unannounced or route.stuck_dropped or sink.stuck or _dropped_inside[0]:
        _write_data(route, data, count)
    else:
        route.inflight = count
        try:
            sink.write(data)
            route.written += count  # under the sink lock
        except Exception as exc:  # noqa: BLE001 - logging never hurts the caller
            _write_failed(route, exc, count)
        finally:
            route.inflight = 0
            sink.stuck = False  # (marked while this write hung: it returned)
    if not (pending or route.stuck_dropped):
        lock.release()
        # (Lines handed over between that look and the release: written by us if the
        # lock is still free, else by whoever took it.)
        if not pending or not lock.acquire(False):
            return
    _drain_and_release(route)


def _after_queued(route: Route, done: object, deadline: float | None) -> bool:
    """The second half of write_lines for lines that joined the pending list."""
    if route.sink.lock.acquire(False):
        _drain_and_release(route)
        return True
    if done is None:
        return True  # the holder writes what is pending before it lets go
    return _wait_written(route, done, deadline)  # type: ignore[arg-type]


def _wait_written(route: Route, done: threading.Event, deadline: float | None) -> bool:
    """Wait until the entry whose Event is ``done`` has been written (by the lock holder,
    or by this thread if the lock comes free), until ``deadline`` at most."""
    lock = route.sink.lock
    began = time.monotonic()
    if deadline is None:
        deadline = began + LOCK_TIMEOUT
    # A write that keeps a caller waiting LOCK_TIMEOUT is stuck; a short flush(timeout) says
    # nothing about a slow sink (marking it would drop lines that sink would write).
    patient = deadline - began >= LOCK_TIMEOUT * 0.99
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            if patient and lock.locked():  # (held all along by one write: see above)
                route.sink.stuck = True
                report(
                    f"stuck:{id(route.sink)}",
                    f"sink {route.sink.name!r} has not finished a write; until it does, its records"
                    " are counted as dropped instead of waited for",
                )
            return done.is_set()
        # Short slices: a holder that let go between our append and our look leaves the
        # pending list to whoever takes the lock next, which may be us.
        if done.wait(min(remaining, 0.05)):
            return True
        if lock.acquire(False):
            _drain_and_release(route)
            return done.is_set()


def _drain_and_release(route: Route) -> None:
    """Write what is pending, then release the sink lock (held by the caller). A line
    added by a thread that found the lock taken is written by the holder: after letting
    go, look again, and write what arrived meanwhile if nobody else has taken the lock."""
    pending, lock = route.pending, route.sink.lock
    while True:
        try:
            while pending:
                _write_pending(route)
            if route.stuck_dropped:  # back from a stuck write: say at once what it cost
                _write_data(route, "", 0)
        finally:
            lock.release()
        if not pending or not lock.acquire(False):
            return


def _drop_stuck(route: Route, count: int) -> None:
    """Count ``count`` lines for a stuck sink as dropped, to be announced when it writes."""
    with counters.lock:
        counters.dropped += count
        route.stuck_dropped += count
    report(f"stuck:{id(route.sink)}", f"sink {route.sink.name!r} is stuck in a write; records are being dropped")


def _write_pending(route: Route) -> None:
    """Write what ``route.pending`` holds now, in one call (the sink lock is held), then
    tell the threads waiting for those lines."""
    pending = route.pending
    parts: list[str] = []
    waiting: list[threading.Event] = []
    count = 0
    while pending:
        data, lines, done = pending.popleft()
        parts.append(data)
        count += lines
        if done is not None:
            waiting.append(done)
    try:
        _write_data(route, "".join(parts), count)
    finally:
        for done in waiting:
            done.set()


def _write_data(route: Route, data: str, count: int) -> None:
    """Write ``count`` lines (and any notices owed) in one call (the sink lock is held)."""
    sink = route.sink
    notices = 0
    lost = route.lost_unannounced
    if lost:
        lost -= sink.cut_lines()  # a line cut by a full disk is completed, not lost
    if lost > 0:
        data = route.announce(f"kakashi lost {lost:,} records: the sink failed (see stats())") + data
        notices += 1
    else:
        lost = 0
    stuck = route.stuck_dropped
    if stuck:
        data = route.announce(f"kakashi dropped {stuck:,} records while the sink was stuck in a write") + data
        notices += 1
    inside = _dropped_inside[0]
    if inside:
        data = route.announce(f"kakashi dropped {inside:,} records logged from inside a sink (they would loop)") + data
        notices += 1
    if not data:
        sink.stuck = False
        return  # a barrier with nothing before it
    route.inflight = count
    try:
        sink.write(data)
        _announced(route, lost, stuck, inside)
        route.written += count  # under the sink lock
    except Exception as exc:  # noqa: BLE001 - logging never hurts the caller
        _write_failed(route, exc, count, notices, lost, stuck, inside)
    finally:
        route.inflight = 0
        sink.stuck = False  # the write returned: the sink is not stuck
        completed = sink.take_completed()
        if completed:  # cut lines, counted as lost, that the sink has now completed
            route.written += completed
            with counters.lock:
                route.lost_unannounced -= completed
                counters.dropped -= completed


def _announced(route: Route, lost: int, stuck: int, inside: int) -> None:
    """The notices for these counts were written: take them off what is owed."""
    if lost or stuck:
        with counters.lock:
            route.lost_unannounced -= lost
            route.stuck_dropped -= stuck
    if inside:
        _dropped_inside[0] -= inside


def _write_failed(
    route: Route, exc: Exception, count: int, notices: int = 0, lost: int = 0, stuck: int = 0, inside: int = 0
) -> None:
    """Account for a failed write of ``count`` lines preceded by ``notices`` notices (which
    announced ``lost``, ``stuck`` and ``inside`` records): count and report what was lost."""
    sink = route.sink
    # A partial write (a disk filling up) wrote some whole lines: those count as written.
    whole = getattr(exc, "lines_written", 0)
    done = max(0, whole - notices)
    if notices and whole >= notices:
        _announced(route, lost, stuck, inside)
    route.written += done
    with counters.lock:
        route.lost_unannounced += count - done
        counters.dropped += count - done
        counters.sink_errors += 1
    report(
        f"sink:{id(sink)}",
        f"sink {sink.name!r} failed ({type(exc).__name__}: {exc}); {count - done} record"
        f"{'s' * (count - done != 1)} dropped",
    )


# Records logged from inside a sink write that were dropped (async worker, stdlib bridge),
# waiting to be announced by the next write. A one-element list: updated in place.
_dropped_inside = [0]


def drop_inside() -> None:
    """Count a record dropped because it was logged from inside a kakashi write (nothing silent)."""
    _dropped_inside[0] += 1
    counters.add(dropped=1)


def flush_all(timeout: float = LOCK_TIMEOUT) -> bool:
    """Write every thread's pending lines: every line logged before this call is written
    when it returns True. Returns False if that could not be done within ``timeout``
    seconds (a stuck or very slow sink); the lines left are still pending (or counted as
    dropped, for a stuck sink)."""
    deadline = None
    done = True
    # First hand every batch to its sink without waiting (a batch lock is held only for a
    # moment by a thread that is not writing), then wait once per route for all of them:
    # threads that keep logging cannot make this wait longer, as it waits for lines that
    # exist now, not for a free lock.
    waiting = [batch for batch in list(_registry) if batch.lines or batch.taking]  # (most have nothing)
    if len(waiting) == 1 and waiting[0].lock.acquire(False):
        # The request-end flush: one batch, free: written the usual way.
        ident = get_ident()
        if ident in flushing:  # (a sink that calls flush(): see flush_batch)
            waiting[0].lock.release()
            return False
        _flush_held(waiting[0], False, None, ident)
    elif waiting:
        deadline = time.monotonic() + timeout
        done = _hand_over(waiting, deadline)
    for route in _routes:
        if route.pending or route.inflight:
            done = _barrier(route, deadline or time.monotonic() + timeout) and done
    for route in _retired:
        if route.pending or route.inflight:
            done = _barrier(route, deadline or time.monotonic() + timeout) and done
    return done


def _hand_over(batches: list[Batch], deadline: float) -> bool:
    """Make sure every line in ``batches`` now has been handed to its sink (written, or in
    its pending list), without waiting for a batch's lock: its owner, logging on, would
    take it again before this thread wakes, as often as it likes. The owners' own flushes
    hand lines over as well, which ``taken`` shows. All batches are looked at in each
    round, so one pause serves them all."""
    # Read in this order, the sum is at least what a batch held when this call began
    # (lines only move from ``lines`` to ``taking`` to ``taken``), so no line is missed.
    targets = []
    for batch in batches:
        target = len(batch.lines)
        target += batch.taking
        targets.append((batch, target + batch.taken))
    ident = get_ident()
    if ident in flushing:
        return False  # (a sink that calls flush(): its own lines wait, see flush_batch)
    while True:
        left = []
        for batch, target in targets:
            # Done when that many have been handed over, or when the batch is empty with
            # no hand-over going on (read in this order: a take moves lines to `taking`).
            if batch.taken >= target or (not batch.lines and not batch.taking):
                continue
            # Else take what is there: with its lock, everything present is handed over.
            # The lock is awaited in short waits (a waiter blocked on a lock takes it as
            # it is let go, where a sleeper would come back to find it taken again).
            lock = batch.lock
            wait = min(0.02, deadline - time.monotonic())
            if lock.acquire(False) or (wait > 0 and not batch.route.sink.stuck and lock.acquire(timeout=wait)):
                # (Only onto the pending list: flush_all then writes it for all batches in
                # one call; a write per batch would give the GIL away, and wait to get it
                # back, once per batch.)
                _flush_held(batch, False, None, ident, defer=True)
            elif batch.taken < target and (batch.lines or batch.taking):
                left.append((batch, target))
        if not left:
            return True
        if time.monotonic() >= deadline or all(batch.route.sink.stuck for batch, _ in left):
            return False
        targets = left


def _barrier(route: Route, deadline: float) -> bool:
    """Return once everything handed to ``route`` before this call is written."""
    lock = route.sink.lock
    if lock.acquire(False):
        _drain_and_release(route)
        return True
    if route.sink.stuck:
        return False
    done = threading.Event()
    route.pending.append(("", 0, done))
    if lock.acquire(False):
        _drain_and_release(route)
        return True
    return _wait_written(route, done, deadline)


def pending() -> int:
    """Lines accepted but not yet written, across all threads."""
    total = sum(len(batch.lines) for batch in list(_registry))
    for route in (*_routes, *_retired):
        if route.pending or route.inflight:
            # (tuple() of a deque is one C call: no thread can change it meanwhile)
            total += sum(entry[1] for entry in tuple(route.pending)) + route.inflight
    return total


def set_routes(routes: list[Route]) -> list[Route]:
    """Send future records to ``routes`` after writing what is pending to the current ones.
    Returns the routes replaced."""
    global _routes
    flush_all()
    old, _routes = _routes, routes
    replaced = [route for route in old if route not in routes]
    # Loggers being rebuilt right now may still render a few lines for the old routes (and
    # the async worker renders records queued before the change): those lines still go to
    # the old sink, which is why the replaced routes are kept (and their lines counted)
    # until they have been quiet for a while (see Flusher.tick).
    now = time.monotonic()
    for route in replaced:
        route.retired_at = now
    _retired.extend(replaced)
    return old


_retired: list[Route] = []


def retired_routes() -> list[Route]:
    """Routes replaced by configure() that may still receive lines (they count as written)."""
    return _retired


def _forget_quiet_routes(now: float) -> None:
    """Drop replaced routes that nothing has written to for a while: their count moves to
    the process total, and a sink that a late line reopened after configure() closed it is
    closed again (flusher thread only)."""
    for route in list(_retired):
        retired = route.retired_at
        if retired is None or now - retired < RETIRED_BATCH_AGE or route.pending or route.inflight:
            continue
        if any(batch.route is route for batch in list(_registry)):
            continue
        lock = route.sink.lock
        if not lock.acquire(False):
            continue
        try:
            counters.add(written=route.written)
            route.written = 0
            if route.closed:
                _close_now(route.sink)
        finally:
            lock.release()
        _retired.remove(route)


def written() -> int:
    """Lines written to every sink since start (or fork)."""
    return counters.written + sum(route.written for route in (*_routes, *_retired))


def close_route(route: Route, timeout: float = LOCK_TIMEOUT) -> None:
    """Write what is pending for ``route``, then close its sink under its lock (a write in
    flight finishes first); never raises. A sink still busy after ``timeout`` seconds, or
    stuck, is left open rather than closed under a write."""
    lock = route.sink.lock
    if not (lock.acquire(False) or (not route.sink.stuck and timeout > 0 and lock.acquire(timeout=timeout))):
        report("close", f"sink {route.sink.name!r} is still busy writing; left open")
        return
    route.closed = True
    try:
        while route.pending:
            _write_pending(route)
        _close_now(route.sink)
    finally:
        _drain_and_release(route)  # (lines handed over meanwhile reopen a file sink)


def close_sink(sink: Sink, timeout: float = LOCK_TIMEOUT) -> None:
    """Close a sink that no route uses (one made by a configure() that then failed)."""
    close_route(Route(sink), timeout)


def _close_now(sink: Sink) -> None:
    try:
        sink.close()
    except Exception as exc:  # noqa: BLE001
        report("close", f"closing sink {sink.name!r} failed: {type(exc).__name__}: {exc}")


def mark_stuck(dropped: int = 0) -> list[Route]:
    """Mark every route whose sink is inside a write now as stuck (called when a drain
    gave up waiting for it): no caller waits for it again until that write returns, which
    announces the ``dropped`` records the drain gave up on along with its own. Returns the
    routes marked."""
    marked = [route for route in (*_routes, *_retired) if route.inflight and route.sink.lock.locked()]
    with counters.lock:
        for route in marked:
            route.sink.stuck = True
            route.stuck_dropped += dropped
    return marked


def routes() -> list[Route]:
    return _routes


# ---------------------------------------------------------------- the flusher thread


class Flusher:
    """Writes batches whose oldest line has waited long enough (bounded delay) and batches of threads
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
                # (Its destructor did not run: the thread was not started by threading, or
                # the storage outlived it.) Forgotten only once it is empty.
                flush_batch(batch, False)
                if not batch.lines:
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
                    flush_batch(batch, False)  # the lock holder, if busy, writes it next
            else:
                seen[batch] = (first, now)
        for route in (*_routes, *_retired):
            # Lines handed over while another route of the same sink held its lock are
            # written by the next writer of their own route: if none comes, by this look.
            if route.pending and not route.sink.stuck and route.sink.lock.acquire(False):
                _drain_and_release(route)
        if _retired:
            _forget_quiet_routes(now)

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
        if not batch.route.sink.stuck and take(batch.lock) and batch.pid == pid:
            _take_and_write(batch, wait=False)  # to the pending list; written just below
    held: dict[int, Route] = {}
    for route in (*_routes, *_retired):
        owner = held.get(id(route.sink))
        if owner is None:
            if route.sink.stuck or not take(route.sink.lock):
                continue
            held[id(route.sink)] = route
            _held_sinks.append(route)
        elif owner.sink.stuck:
            continue
        while route.pending:  # lines of threads that did not wait: write them now
            _write_pending(route)


_held_sinks: list[Route] = []  # routes whose sink lock _before_fork holds


def _after_fork_parent() -> None:
    held = {id(route.sink.lock) for route in _held_sinks}
    while _held_for_fork:
        lock = _held_for_fork.pop()
        if id(lock) not in held:
            lock.release()
    # A sink lock is released as every holder releases it: writing what other threads
    # handed over while the fork held it.
    while _held_sinks:
        route = _held_sinks.pop()
        if route.sink.lock.locked():
            _drain_and_release(route)


def _after_fork_child() -> None:
    # Never touch a lock inherited from the parent: build new ones.
    global _registry_lock
    _held_for_fork.clear()
    _held_sinks.clear()
    _registry_lock = threading.Lock()
    _registry.clear()
    flushing.clear()  # (the forking thread's ident lives on in the child)
    counters.reset_after_fork()
    reset_reports()
    _flusher.reset_after_fork()
    for route in (*_routes, *_retired):
        route.sink.reset_after_fork()
        route.lost_unannounced = route.stuck_dropped = 0
        route.pending.clear()  # the parent's lines: the parent writes them
        route.written = route.inflight = 0
        route.sink.stuck = False  # (a write stuck in the parent is not going on here)
    for route in _routes:
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
    # Lines a stuck sink has not finished (its write, and lines waiting for it). (A daemon
    # thread's write still in flight is not counted: it is the call in flight that the exit
    # may cut, see docs/guarantees.md.)
    left = sum(sum(entry[1] for entry in tuple(r.pending)) + r.inflight for r in (*_routes, *_retired) if r.sink.stuck)
    if left:
        report("exit", f"{left:,} records were not written before exit: a sink did not finish its write")


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
