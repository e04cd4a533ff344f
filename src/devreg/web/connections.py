"""The process's connections as the limits see them: which may be closed to make room for a
new one, and how many each client address holds.

One `ConnectionTable` is shared by every listener of a process (it hangs off uvicorn's
`server_state`). A connection is in at most one of three queues, oldest first:

- `waiting`: no request in progress (idle kept-alive, or still sending its head);
- `uploading`: sending a request body;
- `stalled`: its answer is written but the client is not reading it (the transport's
  buffer is over its high-water mark).

When the process is full, a new connection takes the place of the first connection of the
first non-empty queue in that order: what costs an attacker nothing to hold goes first, a
request being worked on (body received, answer not yet written) never.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Generic, TypeVar

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
C = TypeVar("C")

# IPv6 clients are counted per /64: one subscriber commonly holds a whole /64, so counting
# single addresses would let one client open a connection from each of 2^64 addresses.
IPV6_PREFIX = 64


def address_key(host: str) -> str:
    """What the per-address limit counts: an IPv4 address, or an IPv6 address's /64."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host  # not an IP (a Unix socket path): one key for it
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False))
    return str(address)


class ConnectionTable(Generic[C]):
    def __init__(self) -> None:
        self.waiting: dict[C, None] = {}
        self.uploading: dict[C, None] = {}
        self.stalled: dict[C, None] = {}
        self.per_address: dict[str, int] = {}

    def forget(self, connection: C) -> None:
        self.waiting.pop(connection, None)
        self.uploading.pop(connection, None)
        self.stalled.pop(connection, None)

    def oldest_evictable(self) -> C | None:
        """The connection to close for a new one, taken out of its queue; None if every
        connection is working on a request."""
        for queue in (self.waiting, self.uploading, self.stalled):
            if queue:
                connection = next(iter(queue))
                self.forget(connection)
                return connection
        return None

    def admit(self, key: str, limit: int) -> bool:
        """Count one more connection from `key`, unless it holds `limit` already."""
        held = self.per_address.get(key, 0)
        if held >= limit:
            return False
        self.per_address[key] = held + 1
        return True

    def release(self, key: str) -> None:
        held = self.per_address.get(key, 0) - 1
        if held > 0:
            self.per_address[key] = held
        else:
            self.per_address.pop(key, None)


def exempt(host: str, networks: Iterable[Network]) -> bool:
    """Whether connections from `host` are not counted per address (a trusted proxy speaks
    for many clients)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # an IPv4 peer of a dual-stack listener
    return any(address in network for network in networks)
