"""The client's IP address: the socket peer, or what a trusted proxy says it saw.

`MLAPI_TRUSTED_PROXIES` (CIDRs, comma-separated) lists the reverse proxies in front of us.
When the peer is one of them, the `X-Forwarded-For` chain is read from the right, skipping
trusted proxies; the first other entry is the client (entries further left were written by
the client itself and prove nothing). Without trusted proxies the header is ignored.
`MLAPI_TRUSTED_PROXY_HOPS` (the older setting: N proxies that each append) still works.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings


@lru_cache(maxsize=8)
def _networks(spec: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(item, strict=False) for item in spec)


def trusted_networks() -> tuple:
    """The parsed `MLAPI_TRUSTED_PROXIES` (cached per distinct setting value)."""
    return _networks(tuple(getattr(settings, "MLAPI_TRUSTED_PROXIES", ())))


def _is_trusted(address: str, networks: tuple) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_ip_from(peer: str, forwarded_for: str) -> str:
    """The client address given the socket peer and the raw X-Forwarded-For header."""
    networks = trusted_networks()
    hops = getattr(settings, "MLAPI_TRUSTED_PROXY_HOPS", 0)
    if not forwarded_for or not (networks or hops):
        return peer
    chain = [part.strip() for part in forwarded_for.split(",") if part.strip()]
    if networks:
        if not _is_trusted(peer, networks):
            return peer
        for entry in reversed(chain):
            if not _is_trusted(entry, networks):
                return entry
        return chain[0] if chain else peer
    return chain[-hops] if len(chain) >= hops else peer


def client_ip(request) -> str:
    """The client address of a Django or DRF request (`unknown` if the server gave none)."""
    request = getattr(request, "_request", request)
    meta = request.META
    peer = meta.get("REMOTE_ADDR", "") or "unknown"
    return client_ip_from(peer, meta.get("HTTP_X_FORWARDED_FOR", ""))
