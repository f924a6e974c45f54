"""The stdlib bridge: stdlib records arrive once, with fields and tracebacks, without loops."""

from __future__ import annotations

import logging
import logging.config
from pathlib import Path

import pytest

import kakashi

from conftest import json_records, read_lines, run_python

pytestmark = pytest.mark.usefixtures("restore_logging")
records = json_records


def test_capture_stdlib_routes_records_with_extra_fields_and_args(log_path: Path) -> None:
    kakashi.configure(sink=log_path, format="json")
    kakashi.capture_stdlib()
    kakashi.bind_context(request_id="r1")
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/items", "1.1", 200, extra={"route": "/items"}
    )
    logging.getLogger("lib").debug("below INFO: not captured")
    (rec,) = records(log_path)
    assert rec["logger"] == "uvicorn.access" and rec["level"] == "INFO"
    assert rec["message"] == '127.0.0.1:5000 - "GET /items HTTP/1.1" 200'
    assert rec["route"] == "/items" and rec["request_id"] == "r1"
    assert list(rec)[:4] == ["timestamp", "level", "logger", "message"]


def test_stdlib_exceptions_keep_their_traceback(log_path: Path) -> None:
    kakashi.configure(sink=log_path, format="json")
    kakashi.capture_stdlib()
    try:
        raise OSError("disk gone")
    except OSError:
        logging.getLogger("django.request").exception("Internal Server Error: /x")
    (rec,) = records(log_path)
    assert rec["level"] == "ERROR" and rec["exception"]["type"] == "OSError"  # type: ignore[index]
    assert 'raise OSError("disk gone")' in rec["exception"]["traceback"]  # type: ignore[index]


def test_capture_lowers_the_root_level_and_takes_over_other_handlers(log_path: Path) -> None:
    kakashi.configure(sink=log_path, format="json", level="DEBUG")
    stray = logging.StreamHandler()
    logging.getLogger().addHandler(stray)
    own = logging.getLogger("gunicorn.error")
    own.addHandler(logging.StreamHandler())
    own.propagate = False
    logging.getLogger().setLevel(logging.WARNING)
    handler = kakashi.capture_stdlib("DEBUG")
    assert kakashi.capture_stdlib("DEBUG") is handler  # idempotent
    assert logging.getLogger().handlers == [handler] and logging.getLogger().level == logging.DEBUG
    assert own.handlers == [] and own.propagate
    own.debug("once")
    assert [r["message"] for r in records(log_path)] == ["once"]


@pytest.mark.parametrize("shared_with_root", [False, True])
def test_loggers_sharing_one_handler_list_all_propagate_after_the_take_over(
    log_path: Path, capfd: pytest.CaptureFixture[str], shared_with_root: bool
) -> None:
    # gunicorn's uvicorn worker gives uvicorn.error the very list object of gunicorn.error
    # (and uvicorn.access that of gunicorn.access): emptying one logger's list empties the
    # others', and every one of them had handlers, so every one must propagate afterwards.
    kakashi.configure(sink=log_path, format="json")
    first, second, third = (logging.getLogger(f"shared.{name}") for name in ("first", "second", "third"))
    saved = [(lg, lg.handlers, lg.propagate) for lg in (first, second, third)]
    root = logging.getLogger()
    try:
        shared = root.handlers if shared_with_root else []
        shared.append(logging.StreamHandler())
        first.handlers = second.handlers = third.handlers = shared
        for lg in (first, second, third):
            lg.propagate = False
        handler = kakashi.capture_stdlib()
        assert [(lg.handlers, lg.propagate) for lg in (first, second, third)] == [([], True)] * 3
        assert root.handlers == [handler]
        first.info("from the first")
        second.info("from the second")
        third.warning("from the third")
        recs = records(log_path)
        assert [(r["logger"], r["message"]) for r in recs] == [
            ("shared.first", "from the first"),
            ("shared.second", "from the second"),
            ("shared.third", "from the third"),
        ]
        assert capfd.readouterr().err == ""  # nothing bare through logging.lastResort
    finally:
        for lg, handlers, propagate in saved:
            lg.handlers, lg.propagate = handlers, propagate


def test_uvicorns_coloured_copy_of_the_message_is_not_a_field(log_path: Path) -> None:
    # uvicorn logs its startup lines with extra={"color_message": <the message with ANSI
    # colour codes>} for its own formatter; as a field it would repeat every such line.
    uvicorn = pytest.importorskip("uvicorn")
    kakashi.configure(sink=log_path, format="json")
    kakashi.capture_stdlib(take_over=False)
    config = uvicorn.Config(app=None, host="127.0.0.1", port=0, log_config=None)
    config.bind_socket().close()  # logs "Uvicorn running on http://127.0.0.1:<port> ..."
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 42, extra={"color_message": "\x1b[36m"})
    running, started = records(log_path)
    assert running["logger"] == "uvicorn.error" and running["message"].startswith("Uvicorn running on http://")
    assert started["message"] == "Started server process [42]"
    assert "color_message" not in running and "color_message" not in started


def test_a_record_reaches_kakashi_once_through_several_bridges(log_path: Path) -> None:
    # A StdlibHandler on a logger and another on the root (the Flask extension's on app.logger,
    # capture_stdlib()'s on the root): the record propagates to both, and is written once.
    kakashi.configure(sink=log_path, format="json")
    kakashi.capture_stdlib(take_over=False)
    lib = logging.getLogger("lib.bridged")
    lib.addHandler(kakashi.StdlibHandler())
    lib.addHandler(kakashi.StdlibHandler())
    try:
        lib.warning("same words")
        lib.warning("same words")  # a second record: written too
        logging.getLogger("other").warning("elsewhere")
        assert [(r["logger"], r["message"]) for r in records(log_path)] == [
            ("lib.bridged", "same words"),
            ("lib.bridged", "same words"),
            ("other", "elsewhere"),
        ]
    finally:
        lib.handlers.clear()


def test_a_record_without_weak_references_is_taken_too(log_path: Path) -> None:
    # A record made by a custom factory, of a class without weak references.
    class Bare:
        __slots__ = ("__dict__",)

        def getMessage(self) -> str:
            return str(self.__dict__["msg"])

    kakashi.configure(sink=log_path, format="json")
    handler = kakashi.StdlibHandler()
    for text in ("first", "second"):
        record = Bare()
        record.__dict__.update(logging.makeLogRecord({"name": "lib", "levelno": 30, "msg": text}).__dict__)
        handler.handle(record)  # type: ignore[arg-type]
    assert [r["message"] for r in records(log_path)] == ["first", "second"]


def test_handler_in_dictconfig(log_path: Path) -> None:
    kakashi.configure(sink=log_path, format="json")
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"kakashi": {"class": "kakashi.StdlibHandler"}},
            "loggers": {"django": {"handlers": ["kakashi"], "level": "INFO", "propagate": False}},
        }
    )
    logging.getLogger("django.server").warning("via dictConfig", extra={"status_code": 404})
    (rec,) = records(log_path)
    assert rec["logger"] == "django.server" and rec["status_code"] == 404
    logging.getLogger("django").handlers.clear()


def test_a_bad_percent_format_in_a_library_is_harmless(log_path: Path) -> None:
    kakashi.configure(sink=log_path, format="json")
    kakashi.capture_stdlib()
    logging.getLogger("lib").warning("two %s %s", "one")
    (rec,) = records(log_path)
    assert rec["message"] == "two %s %s <format error TypeError; args: ('one',)>"


def test_forwarding_kakashi_into_stdlib_does_not_loop(log_path: Path) -> None:
    # The reverse direction: kakashi lines handed to a stdlib logger whose records would
    # come back through capture_stdlib. They are not taken back in.
    forwarded: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            forwarded.append(record.getMessage())

    out = logging.getLogger("forward")
    kakashi.configure(sink=lambda data: out.info(data.rstrip("\n")), batch_size=1)
    kakashi.capture_stdlib()
    out.addHandler(Keep())  # the record also propagates to the root's StdlibHandler
    kakashi.get_logger("app").info("one line")
    kakashi.flush()
    assert len(forwarded) == 1 and forwarded[0].endswith("INFO app: one line")
    out.handlers.clear()


def test_uvicorn_style_setup_in_a_subprocess(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    proc = run_python(
        f"""
        import logging, logging.config, kakashi
        logging.config.dictConfig({{
            "version": 1, "disable_existing_loggers": False,
            "formatters": {{"default": {{"format": "%(levelname)s %(message)s"}}}},
            "handlers": {{"default": {{"class": "logging.StreamHandler", "formatter": "default"}}}},
            "loggers": {{"uvicorn": {{"handlers": ["default"], "level": "INFO", "propagate": False}},
                        "uvicorn.access": {{"handlers": ["default"], "level": "INFO", "propagate": False}}}},
        }})
        kakashi.configure(sink={str(path)!r}, format="logfmt")
        kakashi.capture_stdlib()
        logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)
        logging.getLogger("uvicorn.access").info("GET / 200")
        """
    )
    assert proc.returncode == 0 and proc.stderr == ""
    lines = read_lines(path)
    assert len(lines) == 2
    assert 'logger=uvicorn.error message="Started server process [42]"' in lines[0]
    assert 'logger=uvicorn.access message="GET / 200"' in lines[1]
