"""The connection table's rules: what counts as one client address, who makes room."""

from __future__ import annotations

import ipaddress

from devreg.web.connections import ConnectionTable, address_key, exempt


def test_an_ipv4_address_is_its_own_key() -> None:
    assert address_key("192.0.2.7") == "192.0.2.7"
    assert address_key("192.0.2.7") != address_key("192.0.2.8")


def test_ipv6_addresses_count_per_64() -> None:
    one = address_key("2001:db8:1:2::1")
    assert one == address_key("2001:db8:1:2:ffff:ffff:ffff:ffff") == "2001:db8:1:2::/64"
    assert one != address_key("2001:db8:1:3::1")


def test_an_ipv4_mapped_ipv6_address_is_the_ipv4_address() -> None:
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"


def test_admit_counts_up_to_the_limit_and_release_frees_a_place() -> None:
    table: ConnectionTable[str] = ConnectionTable()
    assert all(table.admit("a", 3) for _ in range(3))
    assert not table.admit("a", 3)
    assert table.admit("b", 3)
    table.release("a")
    assert table.admit("a", 3)
    for _ in range(3):
        table.release("a")
    assert "a" not in table.per_address  # no key left behind for a gone address


def test_room_is_made_idle_first_then_uploads_then_stalled_never_busy() -> None:
    table: ConnectionTable[str] = ConnectionTable()
    table.stalled["s1"] = None
    table.uploading["u1"] = None
    table.uploading["u2"] = None
    table.waiting["w1"] = None
    order = [table.oldest_evictable() for _ in range(5)]
    assert order == ["w1", "u1", "u2", "s1", None]


def test_trusted_proxies_are_exempt() -> None:
    networks = [ipaddress.ip_network("10.0.0.0/8")]
    assert exempt("10.1.2.3", networks)
    assert exempt("::ffff:10.1.2.3", networks)  # the same peer on a dual-stack listener
    assert not exempt("192.0.2.1", networks)
    assert not exempt("not an address", networks)
