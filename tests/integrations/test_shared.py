"""The adapters' shared module: request ids made in blocks are valid, unique, and never
shared with a forked child."""

from __future__ import annotations

import json
import sys
import uuid

import pytest

from kakashi.integrations._http import _ID_BLOCK, Options, new_request_id, parse_request_id

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


# The client address when the peer is a trusted proxy: every X-Forwarded-For entry (and the
# peer itself) must be an address ipaddress parses whole, an IPv6 scope id included, and a
# scope id is kept only when it is up to 32 characters of A-Za-z0-9._- (an interface name
# or number). Otherwise the usual rules apply: a broken entry stops the chain, and the
# nearest trusted hop (the proxy peer, or a trusted proxy named after it) is the client; a
# peer that is not a valid address is the server's word, given as it is.
PROXY = "10.0.0.1"


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        # a scope id that is an interface name or number is kept
        (PROXY, "fe80::1%eth0", "fe80::1%eth0"),
        (PROXY, "[fe80::1%en0.7_a-b]:443", "fe80::1%en0.7_a-b"),
        (PROXY, "fe80::1%" + "a" * 32, "fe80::1%" + "a" * 32),
        (PROXY, "fe80::1%12", "fe80::1%12"),
        # anything else in a scope id: the entry is broken, the proxy is the client
        (PROXY, "fe80::1%evil\nline", PROXY),
        (PROXY, "fe80::1%evil\r\nlevel=ERROR", PROXY),
        (PROXY, "[fe80::1%evil\nline]:443", PROXY),
        (PROXY, "fe80::1%\x1b[31mred", PROXY),
        (PROXY, "fe80::1%a b", PROXY),
        (PROXY, "fe80::1%a\tb", PROXY),
        (PROXY, "fe80::1%\x00", PROXY),
        (PROXY, "fe80::1%\u2028", PROXY),
        (PROXY, "fe80::1%\u00e9th0", PROXY),
        (PROXY, "fe80::1%a]", PROXY),
        (PROXY, 'fe80::1%a"b', PROXY),
        (PROXY, "fe80::1%a%b", PROXY),
        (PROXY, "fe80::1%", PROXY),
        (PROXY, "fe80::1%" + "a" * 33, PROXY),
        (PROXY, "fe80::1%" + "a" * 10_000, PROXY),
        (PROXY, "10.2.2.2%eth0", PROXY),  # IPv4 has no scope
        # control characters or other whitespace around an entry are not the list's spaces
        (PROXY, "203.0.113.7\n", PROXY),
        (PROXY, "\x0b203.0.113.7", PROXY),
        (PROXY, " 203.0.113.7\t", "203.0.113.7"),
        # a port must be a port
        (PROXY, "203.0.113.7:443", "203.0.113.7"),
        (PROXY, "203.0.113.7:4x\n", PROXY),
        (PROXY, "[2001:db8::1]:443", "2001:db8::1"),
        (PROXY, "[2001:db8::1]\nx", PROXY),
        # the chain: the nearest broken entry stops it, whatever lies beyond
        (PROXY, "203.0.113.7, fe80::1%evil\nline", PROXY),
        (PROXY, "fe80::1%evil\nline, 203.0.113.7", "203.0.113.7"),
        (PROXY, "203.0.113.7, 10.2.2.2, fe80::1%a b", PROXY),
        (PROXY, "fe80::1%a b, 10.2.2.2", "10.2.2.2"),
        # no peer: no client, whatever the header says
        (None, "fe80::1%evil\nline", None),
        ("", "fe80::1%evil\nline", None),
    ],
)
def test_hostile_forwarded_for_entries_never_become_the_client(
    peer: str | None, forwarded_for: str, client: str | None
) -> None:
    options = Options(trusted_proxies=["10.0.0.0/8"])
    assert options.client(peer, forwarded_for) == client


@pytest.mark.parametrize(
    ("peer", "client"),
    [
        # a peer with a clean scope in a trusted network is a proxy: its header is believed
        ("fe80::1%eth0", "203.0.113.7"),
        # a peer whose scope is not an interface name is not believed to be a proxy: it is
        # the server's word, given as it is (the formats escape it)
        ("fe80::1%evil\nline", "fe80::1%evil\nline"),
        ("fe80::1%\x1b[31m", "fe80::1%\x1b[31m"),
        ("fe80::1%" + "a" * 33, "fe80::1%" + "a" * 33),
    ],
)
def test_a_peer_with_a_hostile_scope_is_not_a_trusted_proxy(peer: str, client: str) -> None:
    options = Options(trusted_proxies=["fe80::/10"])
    assert options.client(peer, "203.0.113.7") == client
