"""The adapters' shared module: request ids made in blocks are valid, unique, and never
shared with a forked child."""

from __future__ import annotations

import json
import sys
import uuid

import pytest

from kakashi.integrations._http import _ID_BLOCK, new_request_id, parse_request_id

from conftest import run_python


def test_request_ids_are_uuid4_hex_and_unique_across_blocks() -> None:
    ids = [new_request_id() for _ in range(3 * _ID_BLOCK + 7)]
    assert len(set(ids)) == len(ids)
    for request_id in ids:
        parsed = uuid.UUID(hex=request_id)
        assert (parsed.hex, parsed.version, parsed.variant) == (request_id, 4, uuid.RFC_4122)


def test_a_replaced_id_is_a_fresh_one() -> None:
    kept, replaced = parse_request_id("abc-123")
    assert (kept, replaced) == ("abc-123", False)
    fresh, replaced = parse_request_id("bad id\r\n")
    assert replaced is True and uuid.UUID(hex=fresh).version == 4
    fresh, replaced = parse_request_id(None)
    assert replaced is False and uuid.UUID(hex=fresh).version == 4


@pytest.mark.skipif(sys.platform == "win32", reason="os.fork")
def test_a_forked_child_never_uses_its_parents_ids() -> None:
    # The parent has a block of ids in hand when it forks; the child must make its own.
    proc = run_python(
        """
        import json, os
        from kakashi.integrations._http import new_request_id
        first = new_request_id()  # the parent now holds the rest of a block
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(write, json.dumps([new_request_id() for _ in range(50)]).encode())
            os._exit(0)
        os.close(write)
        os.waitpid(pid, 0)
        child = json.loads(os.read(read, 1 << 16))
        parent = [new_request_id() for _ in range(50)]
        print(json.dumps({"child": child, "parent": parent}))
        """
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert len(set(got["child"]) | set(got["parent"])) == 100
