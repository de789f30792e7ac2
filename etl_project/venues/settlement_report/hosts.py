"""Which hosts a settlement report may be fetched from (docs/hostile-input.md).

A `location` is operator config, but it ends up as a GET whose answer is landed verbatim in
the raw snapshot: pointed at a cloud metadata service it would copy instance credentials into
the lake. So a host is refused when it is, or resolves to, a cloud metadata address, a
link-local address (169.254.0.0/16, fe80::/10) or no unicast host at all; plain `http://` is
allowed only to loopback (127.0.0.0/8, ::1, `localhost`), everything remote needs `https://`.

The rule is applied twice: to the configured host when the config loads (no DNS then), and
to every address the host resolves to when connecting. `guarded_adapter` pins each connection
to the address it checked, so DNS cannot answer differently between the check and the connect.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NameResolutionError

from etl_project.errors import FinalVenueError, VenueUnavailable

__all__ = [
    "LOOPBACK_ONLY",
    "LocationRefused",
    "address_problem",
    "checked_addresses",
    "guarded_adapter",
    "host_problem",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Why plain http:// was refused (the end of a config error or a fetch error).
LOOPBACK_ONLY = "plain http:// is only allowed to a loopback host (127.0.0.0/8, ::1, localhost)"

#: Names of cloud metadata services (GCP's, with its short forms); compared lower-case.
METADATA_NAMES = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})
#: Metadata addresses outside link-local: AWS's IPv6 one and Alibaba Cloud's.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LEGACY_IPV4 = re.compile(r"[0-9a-fx.]+")


class LocationRefused(FinalVenueError):
    """The location's host is (or resolves to) an address reports are never read from.

    Permanent: no retry changes where a name points, so it is never retried."""


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64), else None."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_problem(ip: IPAddress, plain_http: bool) -> str | None:
    """Why a report must not be fetched from `ip`, or None when it may."""
    inner = _embedded_ipv4(ip)
    shown = str(ip) if inner is None else f"{ip} ({inner})"
    for candidate in (ip, inner):
        if candidate is None:
            continue
        if candidate in METADATA_ADDRESSES:
            return f"{shown} is a cloud metadata address"
        if candidate.is_link_local:
            return f"{shown} is link-local (169.254.0.0/16, fe80::/10)"
        if candidate.is_unspecified or candidate.is_multicast or candidate in _THIS_NETWORK:
            return f"{shown} is not a unicast host address"
    if plain_http and not (ip.is_loopback or (inner is not None and inner.is_loopback)):
        return f"{LOOPBACK_ONLY}, not {shown}"
    return None


def ip_literal(host: str) -> IPAddress | None:
    """`host` as an IP address when it is one, also in the legacy IPv4 forms `getaddrinfo`
    accepts (`2852039166`, `0xa9.0xfe.0xa9.0xfe`, `127.1`), else None."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _LEGACY_IPV4.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def host_problem(host: str, plain_http: bool) -> str | None:
    """Why a configured host is refused, without asking DNS; None when it may be used."""
    name = host.lower().rstrip(".")
    if name in METADATA_NAMES:
        return f"{name} is a cloud metadata host"
    ip = ip_literal(name)
    if ip is not None:
        return address_problem(ip, plain_http)
    if plain_http and name != "localhost":
        return f"{LOOPBACK_ONLY}, not {name}"
    return None


def checked_addresses(host: str, port: int, plain_http: bool, source: str) -> list[str]:
    """Every address `host` resolves to, after checking each (`LocationRefused` if any fails).

    Raises `socket.gaierror` when the name does not resolve (the caller decides how to say so).
    """
    problem = host_problem(host, plain_http=False)
    if problem is not None:
        raise LocationRefused(source, f"location host refused: {problem}")
    found: list[str] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        problem = address_problem(ip, plain_http)
        if problem is not None:
            shown = host.rstrip(".")
            raise LocationRefused(source, f"location host {shown} resolves to {ip}: {problem}")
        if str(ip) not in found:
            found.append(str(ip))
    return found


def resolve_or_fail(host: str, port: int, plain_http: bool, source: str) -> list[str]:
    """`checked_addresses`, with a name that does not resolve as `VenueUnavailable`."""
    try:
        return checked_addresses(host, port, plain_http, source)
    except socket.gaierror:
        raise VenueUnavailable(source, f"cannot resolve location host {host}") from None


def _pinned(base: type[HTTPConnection], plain_http: bool, source: str) -> type[HTTPConnection]:
    """`base` connecting only to addresses `checked_addresses` approved, in turn."""

    class Pinned(base):  # type: ignore[misc, valid-type]
        def _new_conn(self) -> socket.socket:
            name = str(getattr(self, "_dns_host", None) or self.host)  # as given, for DNS
            try:
                addresses = checked_addresses(name, self.port, plain_http, source)
            except socket.gaierror as exc:
                raise NameResolutionError(self.host, self, exc) from exc
            error: Exception | None = None
            for address in addresses:
                self._dns_host = address  # connect to what was checked; `host` (TLS) unchanged
                try:
                    sock: socket.socket = super()._new_conn()
                    return sock
                except OSError as exc:  # urllib3's connect errors; try the next address
                    error = exc
                finally:
                    self._dns_host = name
            assert error is not None
            raise error

    return Pinned


def guarded_adapter(source: str) -> HTTPAdapter:
    """A requests adapter whose every connection is resolved, checked and pinned (see module
    docstring). Mount it on the session for `http://` and `https://`."""

    class Pool(HTTPConnectionPool):
        ConnectionCls = _pinned(HTTPConnection, True, source)

    class TlsPool(HTTPSConnectionPool):
        ConnectionCls = _pinned(HTTPSConnection, False, source)  # type: ignore[assignment]

    adapter = HTTPAdapter()
    pools: dict[str, Any] = {"http": Pool, "https": TlsPool}
    adapter.poolmanager.pool_classes_by_scheme = pools
    return adapter
