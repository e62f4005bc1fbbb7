"""Turning an HTTP request into the Actor that services record on audit events."""

import ipaddress

from django.conf import settings
from django_guid import get_guid

from .models import AuditSource
from .services.context import Actor


def client_ip(request) -> str | None:
    """The client's address: REMOTE_ADDR, or the X-Forwarded-For entry added by our own proxies.

    Only the last TRUSTED_PROXIES hops are believed; anything a client puts
    in front of them is ignored, so the rate limit cannot be dodged by
    sending a forged header.
    """
    address = request.META.get("REMOTE_ADDR")
    hops = settings.OBSERVERS_TRUSTED_PROXIES
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if hops and forwarded:
        chain = [part.strip() for part in forwarded.split(",") if part.strip()]
        if len(chain) >= hops:
            address = chain[-hops]
    try:
        return str(ipaddress.ip_address(address)) if address else None
    except ValueError:
        return None


def actor_from_request(request, source: str = AuditSource.API) -> Actor:
    user = getattr(request, "user", None)
    if user is not None and not getattr(user, "is_authenticated", False):
        user = None
    return Actor(
        user=user,
        source=source,
        ip_address=client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:512],
        request_id=get_guid() or "",
    )
