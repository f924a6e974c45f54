"""The core API as users call it: logger methods, bind, prepare, configure, context."""

from __future__ import annotations

import sys

from typing_extensions import assert_type

import kakashi

kakashi.configure(level="INFO", format="json", sink="app.log")
log = kakashi.get_logger(__name__)
alog = kakashi.get_async_logger("jobs", min_level=kakashi.LOG_LEVEL_DEBUG)

log.debug("not written")
log.info("user logged in", user_id=42, ip="10.0.0.1")
log.info("loaded %d rows from %s", 1200, "orders")
log.warning("slow", ms=812.5)
log.warn("old spelling")
log.error("failed", exc_info=True)
log.critical("down", exc_info=ValueError("x"))
log.log("INFO", "by name")
log.log(25, "by number", exc_info=sys.exc_info())
alog.info("queued")
try:
    1 / 0
except ZeroDivisionError:
    log.exception("division failed", a=1)
    log.error("with the triple", exc_info=sys.exc_info())

req = log.bind(request_id="9f2c")
assert_type(req, kakashi.Logger)
assert_type(log.info("x"), None)

access = log.prepare("method", "path", "status")
access.info("request", "GET", "/", 200)
assert_type(access, kakashi.Prepared)

with kakashi.context(request_id="abc"):
    log.info("inside")
token = kakashi.push_context({"tenant": "t1"})
kakashi.reset_context(token)
assert_type(kakashi.flush(timeout=1.0), bool)
kakashi.stats()["written"]

# Mistakes a type checker must catch (warn_unused_ignores fails if one is accepted).
log.info()  # type: ignore[call-arg]
log.info("m", exc_info="yes")  # type: ignore[arg-type]
log.error(msg="m")  # type: ignore[call-arg]
access.info("request", exc_info=True)  # type: ignore[call-arg]
log.log(None, "m")  # type: ignore[arg-type]
