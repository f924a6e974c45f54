"""Request context: fields that every record logged in the current context carries.

Backed by one :class:`contextvars.ContextVar` holding an immutable :class:`Context`, so
asyncio tasks see the context they were created in and cannot leak into each other, and
a thread started with ``threading.Thread`` starts with an empty context (use
``contextvars.copy_context().run`` to hand yours over). Setting a field makes a new
Context; renderers cache their rendering of a Context on it, per format, so a request's
context is rendered once, not once per line.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar, Token
from typing import Any

from ._values import IMMUTABLE, freeze, safe_str


class Context:
    """An immutable set of context fields, with per-format renderings cached on it. Made
    with :func:`new_context`."""

    __slots__ = ("fields", "rendered")
    fields: dict[str, Any]
    rendered: dict[str, str]  # format -> rendered fields (filled by emitters)


def new_context(fields: dict[str, Any]) -> Context:
    """A Context holding ``fields`` (which the caller no longer changes)."""
    ctx = _new(Context)
    ctx.fields, ctx.rendered = fields, {}
    return ctx


_new = object.__new__


_var: ContextVar[Context | None] = ContextVar("kakashi_context", default=None)
current = _var.get  # the hot path calls this directly (a C method)
_LIMIT = 32768


def bind_context(**fields: Any) -> None:
    """Add ``fields`` to the current context (values are captured now)."""
    old = _var.get()
    merged = {**old.fields, **freeze(fields, _LIMIT)} if old is not None else freeze(dict(fields), _LIMIT)
    _var.set(new_context(merged))


def unbind_context(*keys: str) -> None:
    """Remove ``keys`` from the current context (missing keys are ignored)."""
    old = _var.get()
    if old is None:
        return
    kept = {k: v for k, v in old.fields.items() if k not in keys}
    _var.set(new_context(kept) if kept else None)


def clear_context() -> None:
    """Remove every field from the current context."""
    _var.set(None)


def get_context() -> dict[str, Any]:
    """A copy of the current context's fields."""
    ctx = _var.get()
    return {} if ctx is None else dict(ctx.fields)


class context:  # noqa: N801 - used like a function: ``with kakashi.context(...):``
    """``with kakashi.context(request_id=...):`` binds ``fields`` for the block and restores
    the previous context when it ends, also on error. (A class rather than a generator:
    the web adapters enter one per request.)"""

    __slots__ = ("_fields", "_token")

    def __init__(self, **fields: Any) -> None:
        self._fields = fields

    def __enter__(self) -> None:
        self._token = push_context(self._fields)

    def __exit__(self, *exc: object) -> None:
        _var.reset(self._token)


def push_context(fields: Mapping[str, Any]) -> Token[Context | None]:
    """Add ``fields`` to the current context until :func:`reset_context` is given the
    token returned: what ``with context(**fields)`` does, for code that starts and ends a
    context in different places (a framework's before- and after-request hooks). Values
    are captured now.

        token = kakashi.push_context({"request_id": request_id})
        try:
            handle(request)
        finally:
            kakashi.reset_context(token)

    Raises:
        TypeError: ``fields`` is not a mapping.
    """
    if fields.__class__ is not dict and not isinstance(fields, Mapping):
        raise TypeError(f"push_context takes a mapping of field names to values, not {type(fields).__name__}")
    old = _var.get()
    for key, value in fields.items():  # (str first: a web adapter's fields are)
        if key.__class__ is not str:
            # A name is its text (so 1 and "1" are one field, the later value kept).
            fields = {safe_str(k, _LIMIT): v for k, v in fields.items()}
            return push_context(fields)
        if value.__class__ is not str and value.__class__ not in IMMUTABLE:
            fields = freeze(dict(fields), _LIMIT)
            break
    ctx = _new(Context)
    ctx.fields, ctx.rendered = {**old.fields, **fields} if old is not None else {**fields}, {}
    return _var.set(ctx)


def reset_context(token: Token[Context | None]) -> None:
    """Put back the context as it was before the :func:`push_context` call that returned
    ``token``. As :meth:`contextvars.ContextVar.reset` does, it raises ``RuntimeError``
    for a token used already and ``ValueError`` for one from another context (another
    task or thread)."""
    _var.reset(token)


def set_current(ctx: Context | None) -> None:
    """Install ``ctx`` in this thread (the async worker renders records in the context
    they were logged in)."""
    _var.set(ctx)
