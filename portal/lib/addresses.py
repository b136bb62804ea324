"""IP addresses against configured lists of addresses and networks. No Django here."""

from __future__ import annotations

import hmac
import ipaddress
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=16)
def parse_networks(values: tuple[str, ...]) -> tuple[Network, ...]:
    """'10.0.0.0/8', '192.0.2.7', '::1' -> networks. A bad entry is a configuration error."""
    return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values if value)


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value.strip())
    except ValueError:
        return False
    return True


def address_in(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


def monitoring_access(
    *, remote_addr: str, authorization: str, token: str, allowed: tuple[str, ...]
) -> int:
    """Whether a monitoring request (/metrics, /readyz's details) may see data: 200; else 401
    (a token is configured and none was sent) or 403 (wrong token, address not allowed, or
    monitoring not configured at all)."""
    if allowed and address_in(remote_addr, parse_networks(allowed)):
        return 200
    scheme, _, value = authorization.partition(" ")
    if token and scheme.lower() == "bearer" and value.strip():
        return 200 if hmac.compare_digest(value.strip().encode(), token.encode()) else 403
    if token and not authorization:
        return 401
    return 403
