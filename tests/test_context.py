"""contextvars-backed request context: precedence, isolation between tasks and threads."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from pathlib import Path

import pytest

import kakashi

from conftest import json_records, read_lines

records = json_records


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_context_fields_come_first_and_bind_then_call_fields_win(log_path: Path, mode: str) -> None:
    kakashi.configure(sink=log_path, format="json", mode=mode)
    log = kakashi.get_logger("ctx")
    kakashi.bind_context(request_id="r1", user="ctx-user", path="/a")
    bound = log.bind(user="bound-user", job="j")
    bound.info("one", path="/call")
    log.info("two")
    got = records(log_path)
    assert list(got[0])[4:] == ["request_id", "user", "job", "path"]
    assert (got[0]["request_id"], got[0]["user"], got[0]["job"], got[0]["path"]) == ("r1", "bound-user", "j", "/call")
    assert {k: got[1][k] for k in ("request_id", "user", "path")} == {
        "request_id": "r1",
        "user": "ctx-user",
        "path": "/a",
    }


@pytest.mark.parametrize("fmt", ["text", "logfmt"])
def test_context_in_key_value_formats(log_path: Path, fmt: str) -> None:
    kakashi.configure(sink=log_path, format=fmt)
    kakashi.bind_context(request_id="abc")
    kakashi.get_logger("kv").info("hello", n=1)
    kakashi.flush()
    assert read_lines(log_path)[0].endswith("hello request_id=abc n=1")


def test_unbind_clear_and_get_context() -> None:
    kakashi.bind_context(a=1, b=2)
    kakashi.bind_context(c=3)
    snapshot = kakashi.get_context()
    snapshot["a"] = "changed"
    assert kakashi.get_context() == {"a": 1, "b": 2, "c": 3}
    kakashi.unbind_context("a", "missing")
    assert kakashi.get_context() == {"b": 2, "c": 3}
    kakashi.unbind_context("b", "c")
    assert kakashi.get_context() == {}
    kakashi.bind_context(x=1)
    kakashi.clear_context()
    assert kakashi.get_context() == {}


def test_context_manager_restores_the_previous_context_also_on_error() -> None:
    kakashi.bind_context(outer=1)
    with kakashi.context(inner=2):
        assert kakashi.get_context() == {"outer": 1, "inner": 2}
        with pytest.raises(KeyError), kakashi.context(deeper=3):
            raise KeyError("x")
        assert kakashi.get_context() == {"outer": 1, "inner": 2}
    assert kakashi.get_context() == {"outer": 1}


def test_context_values_are_captured_when_bound(log_path: Path) -> None:
    kakashi.configure(sink=log_path, format="json")
    tags = ["a"]
    kakashi.bind_context(tags=tags)
    tags.append("b")
    kakashi.get_logger("cap").info("x")
    assert records(log_path)[0]["tags"] == ["a"]


def test_asyncio_tasks_do_not_leak_into_each_other(log_path: Path) -> None:
    kakashi.configure(sink=log_path, format="json")
    log = kakashi.get_logger("tasks")

    async def handle(rid: str, ready: asyncio.Event, go: asyncio.Event) -> None:
        kakashi.bind_context(request_id=rid)
        log.info("start")
        ready.set()
        await go.wait()  # the other task runs in between
        log.info("end")

    async def main() -> None:
        events = [(asyncio.Event(), asyncio.Event()) for _ in range(200)]
        tasks = [asyncio.create_task(handle(f"r{i}", r, g)) for i, (r, g) in enumerate(events)]
        for ready, _ in events:
            await ready.wait()
        for _, go in reversed(events):
            go.set()
        await asyncio.gather(*tasks)
        log.info("after all tasks")

    asyncio.run(main())
    got = records(log_path)
    by_id: dict[object, list[object]] = {}
    for r in got[:-1]:
        by_id.setdefault(r["request_id"], []).append(r["message"])
    assert by_id == {f"r{i}": ["start", "end"] for i in range(200)}
    assert "request_id" not in got[-1]


def test_threads_start_with_an_empty_context_unless_handed_one(log_path: Path) -> None:
    kakashi.configure(sink=log_path, format="json")
    log = kakashi.get_logger("threads")
    kakashi.bind_context(request_id="main")
    plain = threading.Thread(target=log.info, args=("plain thread",))
    plain.start()
    plain.join()
    ctx = contextvars.copy_context()
    handed = threading.Thread(target=ctx.run, args=(log.info, "handed over"))
    handed.start()
    handed.join()
    got = {r["message"]: r.get("request_id") for r in records(log_path)}
    assert got == {"plain thread": None, "handed over": "main"}


def test_push_and_reset_context(log_path: Path) -> None:
    kakashi.configure(sink=log_path, format="json")
    kakashi.bind_context(outer=1)
    fields = {"request_id": "r1", "tags": ["a"]}
    token = kakashi.push_context(fields)
    fields["request_id"] = "changed"  # the caller's dict is not kept ...
    fields["tags"].append("b")  # ... and values are captured when pushed
    kakashi.get_logger("push").info("inside")
    assert kakashi.get_context() == {"outer": 1, "request_id": "r1", "tags": '["a"]'}
    kakashi.reset_context(token)
    assert kakashi.get_context() == {"outer": 1}
    with pytest.raises(RuntimeError, match="already been used"):
        kakashi.reset_context(token)
    kakashi.clear_context()
    token = kakashi.push_context({"only": "x"})
    assert kakashi.get_context() == {"only": "x"}
    kakashi.reset_context(token)
    assert kakashi.get_context() == {}
    (line,) = records(log_path)
    assert (line["outer"], line["request_id"], line["tags"]) == (1, "r1", ["a"])


def test_reset_context_refuses_a_token_from_another_task() -> None:
    async def elsewhere() -> None:
        token = kakashi.push_context({"a": "1"})

        async def reset() -> None:
            kakashi.reset_context(token)

        with pytest.raises(ValueError, match="different Context"):
            await asyncio.get_running_loop().create_task(reset())

    asyncio.run(elsewhere())


def test_push_context_captures_str_subclasses_too(log_path: Path) -> None:
    class Lazy(str):
        value = "alice"

        def __str__(self) -> str:
            return self.value

    kakashi.configure(sink=log_path, format="json")
    user = Lazy("")
    token = kakashi.push_context({"user": user})
    Lazy.value = "mallory"
    kakashi.get_logger("lazy").info("x")
    kakashi.reset_context(token)
    assert records(log_path)[0]["user"] == "alice"  # captured when pushed


def test_push_context_refuses_what_is_not_a_mapping_and_renders_any_key(log_path: Path) -> None:
    with pytest.raises(TypeError, match="push_context takes a mapping of field names to values, not list"):
        kakashi.push_context([("a", 1)])  # type: ignore[arg-type]
    assert kakashi.get_context() == {}
    kakashi.configure(sink=log_path, format="logfmt")
    token = kakashi.push_context({7: "seven", "a b": "c"})  # type: ignore[dict-item]
    kakashi.get_logger("keys").info("x")
    kakashi.reset_context(token)
    kakashi.flush()
    assert read_lines(log_path)[0].endswith("message=x 7=seven a_b=c")
