"""Webhook targets must not reach inside our network (SSRF): loopback, private, link-local,
shared, reserved and cloud-metadata addresses are refused unless LEADBASE_WEBHOOKS_ALLOW_PRIVATE.
The check runs when a subscription is saved and again on the resolved address at every delivery,
and the delivery connects to exactly the address that was checked (no second DNS lookup that a
rebinding attacker could answer differently)."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

from core.errors import ValidationFailed, field_error

METADATA_ADDRESSES = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})


class UnsafeTarget(Exception):
    pass


def _allowed(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    # Unwrap first: ::ffff:169.254.169.254 is the metadata address too.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if ip in METADATA_ADDRESSES:
        return False  # never, not even when private targets are allowed
    if settings.LEADBASE_WEBHOOKS_ALLOW_PRIVATE:
        return True
    return ip.is_global and not ip.is_multicast


def resolve_target(host: str, port: int) -> str:
    """Resolve `host` and return one address to connect to; UnsafeTarget if any is refused."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeTarget(f"{host} does not resolve") from exc
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not addresses:
        raise UnsafeTarget(f"{host} does not resolve")
    refused = [str(a) for a in addresses if not _allowed(a)]
    if refused:
        raise UnsafeTarget(f"{host} resolves to a non-public address ({', '.join(refused)})")
    return str(addresses[0])


def validate_webhook_url(url: str) -> str:
    """Raise ValidationFailed (400) for a URL we will not deliver to; return it stripped."""
    url = url.strip()
    parts = urlsplit(url)

    def refuse(message: str):
        raise ValidationFailed(f"url: {message}", errors=[field_error("url", message, "unsafe_url")])

    # urlsplit drops tabs and newlines silently, and an HTTP request line carries printable ASCII only.
    if not url.isascii() or any(ch <= " " or ch == "\x7f" for ch in url):
        refuse("Percent-encode spaces and non-ASCII characters (and use the xn-- form of the host).")

    allowed_schemes = (
        ("https",)
        if settings.PRODUCTION and not settings.LEADBASE_WEBHOOKS_ALLOW_HTTP
        else (
            "http",
            "https",
        )
    )
    if parts.scheme not in allowed_schemes:
        refuse(f"Use {' or '.join(allowed_schemes)}.")
    if not parts.hostname:
        refuse("The URL needs a host.")
    if parts.username or parts.password:
        refuse("Credentials in the URL are not allowed; verify the signature instead.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        refuse("Invalid port.")
    try:
        resolve_target(parts.hostname, port)
    except UnsafeTarget as exc:
        refuse(f"{exc}; webhook targets must be public addresses.")
    return url
