"""HTTP to URLs that customers give (webhook endpoints, an SSO issuer), without reaching inside.

A customer-supplied URL must never become a way to reach this machine or its network (server-side
request forgery): `http://127.0.0.1:5432`, `https://2130706433` (127.0.0.1 as a number),
`https://0x7f000001`, `https://127.1`, `https://[::ffff:127.0.0.1]`, or a name whose DNS answer
is a private address. So:

- the host is resolved once (`resolve`), and every address of the answer must be public: not
  loopback, private, link-local, shared (CGNAT), reserved, multicast or unspecified, and not an
  IPv6 form that embeds such an IPv4 address (mapped, 6to4, NAT64, Teredo);
- the request connects to that checked address itself, sending the URL's host as the Host header
  and as the TLS server name (SNI), with the certificate verified for that host: a second DNS
  answer (rebinding) between the check and the connection cannot slip in;
- redirects are never followed;
- what a caller may show to the customer is `Failure.reason`: "connection failed", "timed out",
  or a refusal that names no address; nothing that tells an open port from a closed one.

`allow` is an explicit allow-list of networks (tests' local receivers, a developer's); an address
inside it passes, and only then is plain http accepted. Django-free: callers pass the list.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import certifi
import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ReadTimeoutError,
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

CONNECTION_FAILED = "connection failed"
TIMED_OUT = "timed out"
NOT_PUBLIC = "refused: the host is not a public internet address"

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")


class Failure(Exception):
    """The request did not get an answer. `reason` is safe to show the customer."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.detail = detail  # for the server's log only


class Refused(Failure):
    """The URL's host is (or resolves to) an address we do not send to."""

    def __init__(self, detail: str = ""):
        super().__init__(NOT_PUBLIC, detail)


def networks(values: Iterable[str]) -> tuple[Network, ...]:
    """An allow-list from settings: "127.0.0.1/32", "::1" (a single address is a /32 or /128)."""
    return tuple(ipaddress.ip_network(str(value), strict=False) for value in values)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(ip: IPAddress) -> bool:
    """An address on the public internet: what a customer's URL may reach."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None and not is_public(embedded):
            return False
    return not (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or ip in _SHARED
        or not ip.is_global
    )


def address_allowed(ip: IPAddress, allow: Sequence[Network] = ()) -> bool:
    return any(ip.version == net.version and ip in net for net in allow) or is_public(ip)


@dataclass(frozen=True)
class Target:
    """A URL resolved once: where to connect, and what to call the host."""

    scheme: str
    host: str  # as in the URL, lower case, without brackets
    port: int
    path: str  # path and query, never empty
    addresses: tuple[IPAddress, ...] = field(default=())

    @property
    def host_header(self) -> str:
        name = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return name if self.port == default else f"{name}:{self.port}"


def parse(url: str) -> Target:
    """The parts of an http(s) URL; ValueError if it is not one."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError(f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(scheme=parts.scheme, host=host, port=port, path=path)


def resolve(url: str, *, allow: Sequence[Network] = ()) -> Target:
    """Resolve the URL's host once and check every address.

    Raises Refused if any address is not public (and not allowed), or if the URL is plain http
    to anything outside the allow-list; Failure("connection failed") if the name does not
    resolve. Numeric forms (2130706433, 0x7f000001, 127.1) resolve as the C library reads them,
    which is what a connection would use.
    """
    try:
        target = parse(url)
    except ValueError as exc:
        raise Refused(str(exc)) from None
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise Failure(CONNECTION_FAILED, f"cannot resolve {target.host}: {exc}") from None
    addresses: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise Failure(CONNECTION_FAILED, f"no address for {target.host}")
    for ip in addresses:
        if not address_allowed(ip, allow):
            raise Refused(f"{target.host} resolves to {ip}")
    if target.scheme == "http" and not all(
        any(ip.version == net.version and ip in net for net in allow) for ip in addresses
    ):
        raise Refused(f"plain http to {target.host}, which is not on the allow-list")
    return Target(target.scheme, target.host, target.port, target.path, tuple(addresses))


def check(url: str, *, allow: Sequence[Network] = ()) -> None:
    """For a URL being saved: Refused if it points inside; a name that does not resolve now
    passes (DNS may be down for a moment; every request resolves and checks again)."""
    try:
        resolve(url, allow=allow)
    except Refused:
        raise
    except Failure:
        return


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes  # at most `read_limit` bytes


def request(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: tuple[float, float] = (5.0, 10.0),
    allow: Sequence[Network] = (),
    read_limit: int = 1 << 20,
) -> Response:
    """One request to a checked address of the URL's host; never follows a redirect.

    Raises Refused or Failure (whose `reason` is "connection failed" or "timed out").
    """
    target = resolve(url, allow=allow)
    sent = {"Host": target.host_header, **(headers or {})}
    last: Failure = Failure(CONNECTION_FAILED)
    for address in target.addresses:
        pool = _pool(target, address, timeout)
        try:
            answer = pool.urlopen(
                method,
                target.path,
                body=body,
                headers=sent,
                redirect=False,
                retries=False,
                assert_same_host=False,
                preload_content=False,
            )
            try:
                data = answer.read(read_limit)
            finally:
                answer.release_conn()
            return Response(answer.status, dict(answer.headers), data)
        except (ConnectTimeoutError, NewConnectionError) as exc:
            # Not connected: nothing was sent, the next address of the answer may take it.
            # (urllib3 makes NewConnectionError a ConnectTimeoutError: refused is not a timeout)
            refused = isinstance(exc, NewConnectionError) and "timed out" not in str(exc)
            timed_out = not refused
            last = Failure(TIMED_OUT if timed_out else CONNECTION_FAILED, str(exc))
        except ReadTimeoutError as exc:
            raise Failure(TIMED_OUT, str(exc)) from None
        except (HTTPError, OSError) as exc:
            raise Failure(_reason(exc), str(exc)) from None
        finally:
            pool.close()
    raise last


def _reason(exc: BaseException) -> str:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (TimeoutError, socket.timeout, ConnectTimeoutError, ReadTimeoutError)):
            return TIMED_OUT
        seen = seen.__cause__ or seen.__context__
    return CONNECTION_FAILED


def _pool(
    target: Target, address: IPAddress, timeout: tuple[float, float]
) -> urllib3.HTTPConnectionPool:
    limits = urllib3.Timeout(connect=timeout[0], read=timeout[1])
    if target.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            str(address),
            port=target.port,
            timeout=limits,
            retries=False,
            maxsize=1,
            server_hostname=target.host,  # SNI: the URL's host, not the address
            assert_hostname=target.host,  # and the certificate must be for that host
            cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(),
        )
    return urllib3.HTTPConnectionPool(
        str(address), port=target.port, timeout=limits, retries=False, maxsize=1
    )
