"""Async mode: callers capture a record and enqueue it; one worker thread renders and writes.

The caller's work is the level check (filtered methods are the same C no-op as in sync
mode), the clock, a snapshot of mutable field values (the value at call time), and one ``deque.append``. The
queue is bounded by ``queue_size``; what happens when it is full is the ``overflow`` policy:

- ``block``: the caller waits for room (nothing is lost);
- ``drop_newest``: the new record is dropped;
- ``drop_oldest``: the oldest waiting record is dropped to make room.

ERROR and CRITICAL records are never dropped: under a drop policy they wait like ``block``.
Every drop is counted in ``stats()["dropped"]`` and announced in the log as one record when
the worker next writes (nothing silent).

Concurrency notes: ``deque.append`` / ``popleft`` are atomic, so producers take no lock. The
bound is checked before appending, so with N producing threads the queue may hold up to
``queue_size + N - 1`` records for a moment. The worker sleeps on an Event; a producer sets
it only when the queue reaches the length the worker asked to be woken at (``_wake_at``), so
a busy worker costs producers one comparison per call.
"""

from __future__ import annotations

import functools
import operator
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from . import _context, _engine, _render
from ._context import Context
from ._context import current as current_context
from ._levels import ERROR
from ._render import exc_triple, internal_error
from ._stats import counters, report
from ._values import format_message, freeze

OVERFLOW_POLICIES = ("block", "drop_newest", "drop_oldest")
_NEVER = 1 << 62  # _wake_at while the worker is busy: no producer wakes it

# At interpreter exit the queue is drained for as long as the sinks make progress: the drain
# gives up only when no batch has been written for EXIT_STALL seconds, and stops at
# EXIT_LIMIT seconds in all (what is left then is counted and reported on stderr).
EXIT_STALL = 5.0
EXIT_LIMIT = 120.0


class _Barrier:
    """Queued by flush(): the worker sets it once everything queued before it is written."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


# A queued record: (render, level, time, msg, exc_info, fields, context). ``render`` renders
# the record for every route it goes to, appending each line to that route's
# ``worker.lines``; it reads the record's time through ``AsyncQueue.clock``.
Record = tuple[Callable[..., None], int, float, object, object, dict[str, Any], Context | None]


class AsyncQueue:
    """The process's queue and its worker thread. Rebuilt in a forked child."""

    def __init__(self) -> None:
        self.queue: deque[Any] = deque()  # never replaced: emitters hold it
        self.queue_size = 10_000
        self.batch_size = 100
        self.max_latency = 0.1
        self.overflow = "block"
        self.wake = threading.Event()
        self.room = threading.Event()
        self.wake_at = [1]  # producers compare len(queue) with wake_at[0]
        self.dropped_unannounced = 0
        self.drop_lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.start_lock = threading.Lock()
        self.stopping = False
        self.pid = os.getpid()
        # The time of the record being rendered, set by the worker before each render; the
        # worker renderers' clock reads it (a C-level partial: no Python frame).
        self.progress = 0  # batches the worker has written (a drain's sign of life)
        self.time_cell = [0.0]
        self.clock: Callable[[], float] = functools.partial(operator.getitem, self.time_cell, 0)  # type: ignore[assignment]

    def configure(self, queue_size: int, batch_size: int, max_latency: float, overflow: str) -> None:
        self.queue_size, self.batch_size, self.max_latency = queue_size, batch_size, max_latency
        self.overflow = overflow

    # ------------------------------------------------------------ producer side

    def ensure_worker(self) -> None:
        thread = self.thread
        if (thread is not None and thread.is_alive()) or _engine.at_exit():
            return  # (no new thread once the interpreter is exiting: loggers write through then)
        with self.start_lock:
            if self.thread is not None and self.thread.is_alive():
                return
            self.stopping = False
            self.thread = threading.Thread(target=self._run, name="kakashi-async", daemon=True)
            self.thread.start()

    def put_slow(self, record: Any, level: int) -> None:
        """The queue is full: apply the overflow policy."""
        self.ensure_worker()
        queue = self.queue
        if len(queue) < self.queue_size:
            queue.append(record)
            self._wake_now()
            return
        policy = self.overflow if level < ERROR else "block"
        if policy == "drop_newest":
            self._count_drop()
            return
        if policy == "drop_oldest":
            try:
                oldest = queue.popleft()
            except IndexError:
                oldest = None
            if oldest is not None and (isinstance(oldest, _Barrier) or oldest[1] >= ERROR):
                queue.appendleft(oldest)  # never drop a barrier or an error: drop the new one
                self._count_drop()
                return
            if oldest is not None:
                self._count_drop()
            queue.append(record)
            return
        # block: wait for the worker to make room, waking it first.
        while len(queue) >= self.queue_size:
            if self.thread is None or not self.thread.is_alive() or self.pid != os.getpid():
                break
            self.room.clear()
            self._wake_now()
            if len(queue) < self.queue_size:
                break
            self.room.wait(0.05)
        queue.append(record)
        self._wake_now()

    def _count_drop(self) -> None:
        with self.drop_lock:
            self.dropped_unannounced += 1
        counters.add(dropped=1)

    def _wake_now(self) -> None:
        # Silence the other producers first: one wake per worker cycle is enough.
        self.wake_at[0] = _NEVER
        self.ensure_worker()
        self.wake.set()

    def flush(self, timeout: float = 10.0, stall: float | None = None) -> bool:
        """Return once everything queued before this call is written (True), or after
        ``timeout`` seconds (False); with ``stall``, also (False) once the worker has
        written nothing for ``stall`` seconds."""
        if not self.queue:
            thread = self.thread
            if thread is None or not thread.is_alive():
                return True  # nothing queued and no worker that could hold a batch
        barrier = _Barrier()
        self.queue.append(barrier)
        self._wake_now()
        if stall is None:
            return barrier.done.wait(timeout)
        now = time.monotonic()
        deadline, last, seen = now + timeout, now, self.progress
        while not barrier.done.wait(max(0.0, min(0.1, deadline - now))):
            now = time.monotonic()
            if self.progress != seen:
                seen, last = self.progress, now
            elif now - last >= stall or now >= deadline:
                return False
        return True

    def shutdown(self, timeout: float = 10.0, stall: float | None = None) -> None:
        """Drain and stop the worker. Safe to call twice; bounded by ``timeout`` (and, with
        ``stall``, given up once the sinks have written nothing for that long)."""
        thread = self.thread
        if thread is None:
            return
        deadline = time.monotonic() + timeout
        drained = self.flush(timeout, stall)
        self.stopping = True
        self.wake.set()
        if thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()) if drained else 0.05)
        stuck = []
        if thread.is_alive() and not drained:
            # The worker is inside a write that has not returned: nobody waits for that sink
            # again until it does (what it holds counts as pending until then), and that
            # write announces the records dropped here.
            left = sum(1 for item in self.queue if not isinstance(item, _Barrier))
            stuck = _engine.mark_stuck(left)
        if not thread.is_alive():
            # Records a producer queued after the worker's last look: write them here.
            ident = _engine.get_ident()
            _engine.flushing.add(ident)
            try:
                while self.queue and time.monotonic() < deadline:
                    self._write_batch()
            finally:
                _engine.flushing.discard(ident)
        left = sum(1 for item in self.queue if not isinstance(item, _Barrier))
        if left:
            self.queue.clear()
            counters.add(dropped=left)
            if not stuck:
                with self.drop_lock:
                    self.dropped_unannounced += left  # announced by the next worker's first write
            if stall is not None and not drained and time.monotonic() < deadline:
                why = f"the sink wrote nothing for {stall:g}s"
            else:
                why = f"it did not finish within {timeout:g}s"
            report("shutdown", f"async drain gave up ({why}); {left} queued records dropped")
        self.thread = None
        self.wake_at[0] = 1  # the next record starts a new worker

    def depth(self) -> int:
        return len(self.queue)

    # ------------------------------------------------------------ worker side

    def _run(self) -> None:
        queue, wake, wake_at = self.queue, self.wake, self.wake_at
        ident = _engine.get_ident()
        while True:
            if not queue:
                if self.stopping:
                    return
                wake_at[0] = 1
                wake.clear()
                if not queue:  # re-check after publishing wake_at (see the module notes)
                    wake.wait(1.0)
                wake_at[0] = _NEVER
                if not queue:
                    continue
                # Give producers up to max_latency to fill a batch, unless the queue is full.
                if len(queue) < self.batch_size and not self.stopping:
                    deadline = time.monotonic() + self.max_latency
                    wake_at[0] = self.batch_size
                    wake.clear()
                    while len(queue) < min(self.batch_size, self.queue_size) and not self.stopping:
                        if _barrier_queued(queue):
                            break
                        remaining = deadline - time.monotonic()
                        if remaining <= 0 or not wake.wait(remaining):
                            break
                        wake.clear()
                    wake_at[0] = _NEVER
            _engine.flushing.add(ident)  # what sinks and renders log now must not feed the queue
            try:
                self._write_batch()
            except Exception as exc:  # noqa: BLE001 - the worker never dies
                counters.add(internal_errors=1)
                report("async", f"async worker error: {type(exc).__name__}: {exc}")
            finally:
                _engine.flushing.discard(ident)
            self.progress += 1  # (worker only)
            self.room.set()

    def _write_batch(self) -> None:
        queue, time_cell, set_context = self.queue, self.time_cell, _context.set_current
        barriers: list[_Barrier] = []
        for _ in range(self.batch_size):
            try:
                item = queue.popleft()
            except IndexError:
                break
            if isinstance(item, _Barrier):
                barriers.append(item)
                break  # write what came before it, then release the waiter
            render, _, time_cell[0], msg, exc_info, fields, ctx = item
            set_context(ctx)  # render in the context the record was logged in
            if fields or exc_info:
                render(msg, exc_info=exc_info, **fields)
            else:
                render(msg)
        notice = ""
        if self.dropped_unannounced:
            with self.drop_lock:
                dropped, self.dropped_unannounced = self.dropped_unannounced, 0
            notice = f"kakashi dropped {dropped:,} records (overflow={self.overflow})"
        current = _engine.routes()
        for route in (*current, *_engine.retired_routes()):
            lines = route.worker.lines  # filled by the renders above
            count = len(lines)
            if notice and route in current:  # (not to a sink configure() has replaced)
                lines.append(route.announce(notice))
            if lines:
                data = "".join(lines)
                lines.clear()
                _engine.write_lines(route, data, count)
        for barrier in barriers:
            barrier.done.set()

    def reset_after_fork(self) -> None:
        # The parent's queued records are the parent's: the child starts empty. The
        # deque and wake_at objects are kept (emitters hold them); everything with a lock
        # inside is new.
        self.queue.clear()
        self.wake = threading.Event()
        self.room = threading.Event()
        self.wake_at[0] = 1
        self.dropped_unannounced = 0
        self.drop_lock = threading.Lock()
        self.start_lock = threading.Lock()
        self.thread = None
        self.stopping = False
        self.pid = os.getpid()
        for route in _engine.routes():
            route.worker.lines.clear()


def _barrier_queued(queue: deque[Any]) -> bool:
    try:
        return isinstance(queue[-1], _Barrier)
    except IndexError:
        return False


async_queue = AsyncQueue()


def make_async_emitter(render: Callable[..., None], level: int, limit: int) -> Callable[..., None]:
    """The caller's side of an async logger method: capture, enqueue, and for ERROR and
    above wait until the record is written (bounded delay)."""
    aq = async_queue
    queue, wake_at, size = aq.queue, aq.wake_at, aq.queue_size
    clock = time.time
    context_now = current_context
    flushing, get_ident = _engine.flushing, _engine.get_ident
    wait_written = level >= ERROR
    trace = _render.span_ids

    def emit(msg: object, /, *args: Any, exc_info: object = None, **fields: Any) -> None:
        if flushing and get_ident() in flushing:
            # Logged from inside a kakashi write on this thread (the worker's sink, a value's
            # __str__ rendered by the worker): queueing it would feed the worker forever, and
            # waiting for it would wait for ourselves. Counted and announced instead.
            _engine.drop_inside()
            return
        try:
            if args:
                msg = format_message(msg, args, limit)
            if fields:
                fields = freeze(fields, limit)
            if trace is not None:
                ids = trace()  # the span is the caller's: read it now, render it as fields
                if ids is not None:
                    fields = {"trace_id": ids[0], "span_id": ids[1], **fields}
            if exc_info:
                exc_info = exc_triple(exc_info)
            record = (render, level, clock(), msg, exc_info, fields, context_now())
            if len(queue) < size:
                queue.append(record)
                if len(queue) >= wake_at[0]:
                    aq._wake_now()
            else:
                aq.put_slow(record, level)
            if wait_written:
                aq.flush()
        except Exception as exc:  # noqa: BLE001 - logging never hurts the caller
            internal_error(exc)

    return emit


def _after_fork_child() -> None:
    async_queue.reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_child)
