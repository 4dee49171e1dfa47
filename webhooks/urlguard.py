"""SSRF guard: which webhook URLs are accepted, and which addresses may be connected to.

Checked twice: when an endpoint is saved (scheme, shape, literal addresses) and at every
connection (`resolve_public`: the name is resolved, every address it resolves to is checked,
and the connection goes to a checked address, so a DNS answer that changes after the save —
rebinding — cannot reach an internal host). `MLAPI_WEBHOOK_ALLOW_HTTP` allows `http`,
`MLAPI_WEBHOOK_ALLOW_PRIVATE` allows loopback, private, link-local and other non-public ranges.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlockedURL(ValueError):
    """The URL or an address it resolves to is not allowed (message says why)."""


def _literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def address_allowed(ip: IPAddress) -> bool:
    """Public unicast only, unless MLAPI_WEBHOOK_ALLOW_PRIVATE."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if settings.MLAPI_WEBHOOK_ALLOW_PRIVATE:
        return not ip.is_unspecified and not ip.is_multicast
    return ip.is_global and not ip.is_multicast


def check_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an acceptable URL, else `BlockedURL` with the reason."""
    if not isinstance(url, str) or len(url) > 2000 or any(c.isspace() for c in url):
        raise BlockedURL("Enter a valid URL.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise BlockedURL("Enter a valid URL.") from None
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if scheme not in ("http", "https") or not host:
        raise BlockedURL("Enter a valid http(s) URL with a host.")
    if scheme == "http" and not settings.MLAPI_WEBHOOK_ALLOW_HTTP:
        raise BlockedURL("Webhook URLs must use https.")
    if parts.username or parts.password:
        raise BlockedURL("Webhook URLs may not carry credentials.")
    literal = _literal_ip(host)
    if literal is not None and not address_allowed(literal):
        raise BlockedURL(f"Webhook URLs must point to a public address, not {literal}.")
    local_name = host == "localhost" or host.endswith(".localhost")
    if literal is None and local_name and not settings.MLAPI_WEBHOOK_ALLOW_PRIVATE:
        raise BlockedURL("Webhook URLs must point to a public address, not localhost.")
    return scheme, host, port or (443 if scheme == "https" else 80)


def resolve_public(host: str, port: int) -> list[tuple]:
    """Resolve `host` now; every address must be allowed. Returns getaddrinfo's entries."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ConnectionError(f"cannot resolve {host}: {exc}") from None
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%")[0])
        if not address_allowed(ip):
            raise BlockedURL(f"{host} resolves to {ip}, which is not a public address.")
    return infos
