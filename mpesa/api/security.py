"""Who may call our webhooks: the secret in the path, Safaricom's addresses, and our own proxies."""

from __future__ import annotations

import hmac
import ipaddress
import logging
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

logger = logging.getLogger("mpesa.webhooks")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def webhook_token_matches(token: str) -> bool:
    expected = settings.MPESA_WEBHOOK_TOKEN
    # An unset token disables the webhooks instead of accepting everything.
    return bool(expected) and hmac.compare_digest(token.encode(), expected.encode())


def caller_ip(request: HttpRequest) -> str | None:
    """The caller's address, or None when it is not an IP address. X-Forwarded-For is believed only
    when the direct peer is one of our own proxies; then the nearest address that is not one of them
    is the caller. (The raw header is kept in the webhook log.)"""
    peer = _address(request.META.get("REMOTE_ADDR"))
    trusted = _networks(tuple(settings.MPESA_TRUSTED_PROXIES))
    if not _in(peer, trusted):
        return peer
    header: str = request.META.get("HTTP_X_FORWARDED_FOR", "")
    for part in reversed([part.strip() for part in header.split(",") if part.strip()]):
        address = _address(part)
        if not _in(address, trusted):
            return address
    return peer


def caller_allowed(address: str | None) -> bool:
    return _in(address, _networks(tuple(settings.MPESA_ALLOWED_IPS)))


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip())


def _address(text: str | None) -> str | None:
    """A canonical IP address: IPv4 seen through IPv6 (::ffff:196.201.214.200) reads as IPv4."""
    try:
        ip = ipaddress.ip_address((text or "").strip())
    except ValueError:
        return None
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped or ip)


def _in(address: str | None, networks: tuple[Network, ...]) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)
