"""§10 key restrictions: validating them on the way in, checking them on every data-plane call.

`check_restrictions` reads only the `KeyRestrictions` cached on the principal (no query); a call
outside them is 403 `permission_denied` and, being refused before `admit()`, uses no quota.
Origins: a restricted key is for browsers, so a call without an `Origin` header is refused.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from keys.principal import SCOPES, UNRESTRICTED, Principal
from mlapi.exceptions import Forbidden, invalid

MAX_ITEMS = 50


class KeyRestricted(Forbidden):
    """A request outside its API key's restrictions (403 permission_denied)."""


def check_restrictions(
    principal: Principal, *, model: str | None = None, scope: str, client_ip: str, origin: str
) -> None:
    """Raise `KeyRestricted` unless the key may use `scope` (on `model`) from there."""
    r = principal.restrictions
    if r is UNRESTRICTED:
        return
    if scope not in r.scopes:
        raise KeyRestricted(f"This API key does not have the {scope!r} scope.")
    if model is not None and r.models is not None and model not in r.models:
        raise KeyRestricted(f"This API key is not allowed to use the model {model!r}.")
    if r.networks:
        try:
            ip = ipaddress.ip_address(client_ip)
        except ValueError:
            raise KeyRestricted("This API key is restricted to certain addresses.") from None
        if not any(ip in network for network in r.networks):
            raise KeyRestricted(f"This API key may not be used from {client_ip}.")
    if r.origins and (origin or "").lower() not in r.origins:
        raise KeyRestricted("This API key may not be used from this origin.")


# --- validation (key creation and PATCH) ---


def _items(field: str, value) -> list:
    if not isinstance(value, list | tuple):
        raise invalid(field, "Must be a list.")
    if len(value) > MAX_ITEMS:
        raise invalid(field, f"At most {MAX_ITEMS} entries.")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise invalid(f"{field}[{i}]", "Must be a non-empty string.")
        if "\x00" in item:  # as DRF's CharField: PostgreSQL text and jsonb cannot hold NUL
            raise invalid(f"{field}[{i}]", "Null characters are not allowed.")
    return [item.strip() for item in value]


def clean_models(value, *, plan) -> list[str] | None:
    """None (all the plan covers) or a non-empty list of models the plan covers."""
    if value is None:
        return None
    names = _items("models", value)
    if not names:
        raise invalid("models", "Name at least one model, or null for all the plan covers.")
    for i, name in enumerate(names):
        if not plan.covers(name):
            raise invalid(f"models[{i}]", f"Your plan does not include the model {name!r}.")
    return sorted(set(names))


def clean_scopes(value) -> list[str]:
    """A non-empty subset of `predict`, `jobs`, `models:read`."""
    names = _items("scopes", value)
    if not names:
        raise invalid("scopes", f"Name at least one scope of {', '.join(SCOPES)}.")
    for i, name in enumerate(names):
        if name not in SCOPES:
            raise invalid(
                f"scopes[{i}]", f"Unknown scope {name!r}; choose from {', '.join(SCOPES)}."
            )
    return [scope for scope in SCOPES if scope in names]


def clean_ips(value) -> list[str]:
    """CIDRs (a bare address means just that address), normalized: `10.0.0.0/8`."""
    networks = []
    for i, item in enumerate(_items("allowed_ips", value)):
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise invalid(f"allowed_ips[{i}]", f"{item!r} is not an IP address or CIDR.") from None
    return list(dict.fromkeys(networks))


def clean_origin(field: str, item: str) -> str:
    """`https://host[:port]`, lowercased, no path, query or credentials."""
    try:
        parts = urlsplit(item)
        port = parts.port
    except ValueError:
        raise invalid(field, f"{item!r} is not an origin.") from None
    if parts.scheme != "https" or not parts.hostname:
        raise invalid(field, f"{item!r} is not an https://host[:port] origin.")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise invalid(field, f"{item!r} must be an origin only: https://host[:port].")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"https://{host}" + (f":{port}" if port and port != 443 else "")


def clean_origins(value) -> list[str]:
    items = _items("allowed_origins", value)
    return list(
        dict.fromkeys(clean_origin(f"allowed_origins[{i}]", o) for i, o in enumerate(items))
    )


def clean_restrictions(*, plan, **given) -> dict:
    """Validate the restriction fields present in `given` (400 naming the field at fault).

    Returns the model field values to store: `allowed_models`, `scopes`, `allowed_ips`,
    `allowed_origins` (only those given).
    """
    cleaned = {}
    if "models" in given:
        cleaned["allowed_models"] = clean_models(given["models"], plan=plan)
    if "scopes" in given:
        cleaned["scopes"] = clean_scopes(given["scopes"])
    if "allowed_ips" in given:
        cleaned["allowed_ips"] = clean_ips(given["allowed_ips"])
    if "allowed_origins" in given:
        cleaned["allowed_origins"] = clean_origins(given["allowed_origins"])
    return cleaned
