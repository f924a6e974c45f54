"""Several sinks with their own format and level; redaction of secret-looking fields."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import kakashi

from conftest import read_lines


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_each_sink_gets_its_format_and_level(tmp_path: Path, mode: str) -> None:
    text, js = tmp_path / "app.log", tmp_path / "app.json"
    kakashi.configure(
        level="DEBUG",
        mode=mode,
        sinks=[{"sink": text, "format": "text", "level": "WARNING"}, {"sink": js, "format": "json"}],
    )
    log = kakashi.get_logger("multi")
    log.debug("debug only in json", n=1)
    log.warning("in both", n=2)
    kakashi.flush()
    assert [line.split(": ", 1)[1] for line in read_lines(text)] == ["in both n=2"]
    assert [json.loads(line)["n"] for line in read_lines(js)] == [1, 2]


def test_a_sink_level_below_the_logger_level_does_not_widen_it(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    kakashi.configure(level="INFO", sinks=[{"sink": path, "level": "DEBUG"}])
    kakashi.get_logger("w").debug("hidden")
    kakashi.flush()
    assert read_lines(path) == []


@pytest.mark.parametrize(
    ("sinks", "error", "message"),
    [
        ([], ValueError, "sinks must not be empty"),
        ("app.log", TypeError, "sinks must be a list of sinks, not str"),
        ([{"path": "x"}], ValueError, "unknown key(s) 'path' in sink {'path': 'x'}; valid keys: sink, format, level"),
        ([{"format": "json"}], ValueError, "has no 'sink' key"),
        ([{"sink": "stderr", "format": "yaml"}], ValueError, "unknown format 'yaml'"),
        ([{"sink": "stderr", "level": "LOUD"}], ValueError, "unknown level 'LOUD'"),
    ],
)
def test_bad_sinks_fail_in_configure(sinks: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        kakashi.configure(sinks=sinks)  # type: ignore[arg-type]
    assert message in str(info.value)


def test_sink_and_sinks_together_are_an_error() -> None:
    with pytest.raises(ValueError, match="give sink= or sinks=, not both"):
        kakashi.configure(sink="stderr", sinks=["stdout"])


def test_a_later_bad_sink_closes_the_files_already_opened(tmp_path: Path) -> None:
    good = tmp_path / "good.log"
    with pytest.raises(FileNotFoundError):
        kakashi.configure(sinks=[good, tmp_path / "missing" / "x.log"])
    assert good.exists()  # opened, then closed again; the old configuration stays
    kakashi.get_logger("x").warning("to stderr still")


SECRET_NAMES = [
    "password",
    "PASSWORD",
    "db_password",
    "passwd",
    "secret",
    "client_secret",
    "token",
    "access_token",
    "api_key",
    "apikey",
    "API-KEY",
    "authorization",
    "Cookie",
    "set_cookie",
    "Set-Cookie",
]


@pytest.mark.parametrize("fmt", ["text", "json", "logfmt"])
def test_secret_fields_are_never_written(log_path: Path, fmt: str) -> None:
    kakashi.configure(sink=log_path, format=fmt)
    kakashi.bind_context(session_token="ctx-secret-1")
    log = kakashi.get_logger("auth").bind(api_key="bound-secret-2")
    fields = {name: f"call-secret-{i}" for i, name in enumerate(SECRET_NAMES)}
    log.info("login", user="bob", **fields)
    log.info("again", user="bob", **fields)  # the second time through the caches
    kakashi.clear_context()
    kakashi.flush()
    text = log_path.read_text()
    assert "secret-" not in text
    # the call's api_key replaces the bound one: per line, the call's names plus the context's
    assert text.count("[REDACTED]") == 2 * (len(SECRET_NAMES) + 1)
    assert "bob" in text
    if fmt == "json":
        record = json.loads(read_lines(log_path)[0])
        assert record["password"] == "[REDACTED]" and record["user"] == "bob"


def test_redaction_list_can_be_extended_or_turned_off(log_path: Path) -> None:
    kakashi.configure(sink=log_path, redact=(*kakashi.DEFAULT_REDACT, "ssn"))
    log = kakashi.get_logger("auth")
    log.info("x", ssn="123-45-6789", password="p")
    kakashi.configure(sink=log_path, redact=())
    log.info("y", password="visible")
    kakashi.flush()
    lines = read_lines(log_path)
    assert lines[0].endswith("x ssn=[REDACTED] password=[REDACTED]") and lines[1].endswith("y password=visible")
    assert not kakashi.is_redacted("Authorization")
    kakashi.configure()
    assert kakashi.is_redacted("Authorization") and not kakashi.is_redacted("user")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("password", "redact must be a tuple of field names, not str"),
        ((1,), "redact entries must be non-empty strings, got 1"),
    ],
)
def test_bad_redact_lists_fail(value: object, message: str) -> None:
    with pytest.raises((TypeError, ValueError)) as info:
        kakashi.configure(redact=value)  # type: ignore[arg-type]
    assert message in str(info.value)
